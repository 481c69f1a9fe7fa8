"""Dual encoders: texts and images into one vector space, compared by cosine similarity (CLIP, ALIGN, SigLIP).

``DualEncoder`` holds what every such model shares (batched, normalised encoding of both sides; the scaled
similarity); the three kinds differ only in their towers:

- ``HFDualEncoder``: a ``transformers`` ``CLIPModel`` / ``SiglipModel`` (any Hub id or local directory);
- ``OpenCLIPDualEncoder``: an ``open_clip`` model (extra ``[open_clip]``);
- ``CompositeDualEncoder``: any image tower + any Hugging Face text encoder + projections, saved as one
  directory, so a model trained here (``rankstack.train.lit``) reloads and can be shared.

``load_dual_encoder`` opens any of them by path or name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import MissingExtraError, RankstackError
from rankstack.models import lazy, model_dir
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.multimodal.images import DEFAULT_MAX_PIXELS, ImageBatches, ImageTransform
from rankstack.multimodal.towers import EfficientNetTower, load_image_tower

CONFIG_FILE = "dual_encoder.json"
HEADS_FILE = "heads.safetensors"
FORMAT_VERSION = 1
_CLIP_TEMPERATURE = 0.07  # CLIP's initial temperature: logit scale log(1 / 0.07)


class DualEncoder:
    """Base class: ``encode_texts`` and ``encode_images`` return L2-normalised float32 rows of the same
    dimension; ``similarity`` is CLIP's ``logit_scale * t @ i.T (+ logit_bias)``.

    Subclasses provide ``_text_features(texts)`` and ``_image_features(pixels)`` (unnormalised torch tensors),
    ``transform`` (how images are read), ``dim``, ``name`` and ``fingerprint``.
    """

    name: str
    dim: int
    device: str
    transform: ImageTransform
    batch_size: int = 32
    image_batch_size: int = 8  # convolutional towers on a CPU run fastest on small batches (measured: 8 beats 32)
    threads: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    # ------------------------------------------------------------------ subclass hooks
    def _text_features(self, texts: list[str]) -> Any:
        raise NotImplementedError

    def _image_features(self, pixels: Any) -> Any:
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        raise NotImplementedError

    @property
    def logit_scale(self) -> float:
        return 1.0 / _CLIP_TEMPERATURE

    @property
    def logit_bias(self) -> float:
        return 0.0

    # ------------------------------------------------------------------ shared
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def identity(self) -> dict[str, Any]:
        """What an index records about the model (``rankstack.index.vectors.check_model`` compares it)."""
        return {"model": self.name, "query_model": self.name, "kind": "dual", "encoder": type(self).__name__,
                "fingerprint": self.fingerprint, "query_fingerprint": self.fingerprint, "dim": self.dim,
                "pooling": "dual", "normalize": True}  # fmt: skip

    def encode_texts(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """``[n, dim]`` unit vectors; texts are batched by length so a batch carries little padding."""
        torch = lazy.torch()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        bar = lazy.progress(len(texts), "encoding texts", show_progress)
        with torch.inference_mode():
            for lo in range(0, len(order), self.batch_size):
                rows = order[lo : lo + self.batch_size]
                vectors = torch.nn.functional.normalize(self._text_features([texts[i] for i in rows]).float(), dim=-1)
                out[rows] = vectors.cpu().numpy()
                bar.update(len(rows))
        bar.close()
        return out

    def encode_images(
        self, paths: Sequence[str | os.PathLike[str]], show_progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors [m, dim], positions [m])``: unit vectors for the ``m`` images that could be read and which
        of ``paths`` they are. Unreadable files are warned about by path and left out."""
        torch = lazy.torch()
        batches = ImageBatches(paths, self.transform, self.image_batch_size, self.threads, self.max_pixels, show_progress,
                               desc="encoding images")  # fmt: skip
        vectors, positions = [], []
        with torch.inference_mode():
            for rows, pixels in batches:
                feats = self._image_features(torch.from_numpy(pixels).to(self.device)).float()
                vectors.append(torch.nn.functional.normalize(feats, dim=-1).cpu().numpy())
                positions.extend(rows)
        if not vectors:
            return np.zeros((0, self.dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
        return np.vstack(vectors), np.asarray(positions, dtype=np.int64)

    def similarity(self, text_vectors: np.ndarray, image_vectors: np.ndarray) -> np.ndarray:
        """``[texts, images]`` logits, as ``CLIPModel``'s ``logits_per_text``."""
        return self.logit_scale * (np.asarray(text_vectors) @ np.asarray(image_vectors).T) + self.logit_bias


# ---------------------------------------------------------------------------------- transformers
def transform_from_processor(path: Path) -> ImageTransform:
    """The ``ImageTransform`` a Hugging Face ``preprocessor_config.json`` describes (CLIP: resize the short side,
    centre crop; SigLIP: resize to a square)."""
    cfg = model_dir.read_json_object(path / "preprocessor_config.json")
    if not cfg:
        raise ModelDirectoryError(f"{path} has no preprocessor_config.json: the image side cannot be prepared")
    size = cfg.get("size", 224)
    crop = cfg.get("crop_size", size)
    crop_side = crop.get("height", crop.get("shortest_edge")) if isinstance(crop, dict) else crop
    resample = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}.get(int(cfg.get("resample", 3)), "bicubic")
    mean, std = tuple(cfg.get("image_mean", (0.5,) * 3)), tuple(cfg.get("image_std", (0.5,) * 3))
    if isinstance(size, dict) and "shortest_edge" in size and cfg.get("do_center_crop", True):
        return ImageTransform(int(crop_side), int(size["shortest_edge"]), mean, std, False, resample)
    side = size.get("height", size.get("shortest_edge")) if isinstance(size, dict) else size
    return ImageTransform(int(side), None, mean, std, True, resample)


class HFDualEncoder(DualEncoder):
    """A ``transformers`` CLIP-family model: ``CLIPModel`` or ``SiglipModel`` (``openai/clip-vit-base-patch32``,
    ``google/siglip-base-patch16-224``, a local directory). Images are read with the model's own preprocessing
    settings but decoded in rankstack's thread pool."""

    def __init__(self, model: str | os.PathLike[str], device: str | None = None, batch_size: int = 32,
                 threads: int | None = None, revision: str | None = None):  # fmt: skip
        transformers = lazy.transformers()
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        self.device = lazy.default_device(device)
        self.model = transformers.AutoModel.from_pretrained(self.path).to(self.device).eval()
        self.model_type = self.model.config.model_type
        if not hasattr(self.model, "get_image_features"):
            raise RankstackError(f"{model} is a {self.model_type!r} model, not a text-image dual encoder (CLIP, SigLIP)")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.transform = transform_from_processor(self.path)
        self.batch_size, self.threads = batch_size, threads
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self.dim = int(getattr(self.model.config, "projection_dim", 0) or self.model.config.text_config.hidden_size)

    @property
    def fingerprint(self) -> str:
        return model_dir.fingerprint(self.path)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    @property
    def logit_bias(self) -> float:
        bias = getattr(self.model, "logit_bias", None)
        return 0.0 if bias is None else float(bias.detach())

    def _text_features(self, texts: list[str]) -> Any:
        # SigLIP was trained on texts padded to its full length and attending to the padding (its tokenizer makes no
        # attention mask); CLIP pads per batch and masks
        siglip = self.model_type == "siglip"
        batch = self.tokenizer(texts, padding="max_length" if siglip else True, truncation=True,
                               max_length=self.max_length, return_tensors="pt").to(self.device)  # fmt: skip
        inputs = {"input_ids": batch["input_ids"]}
        if not siglip and "attention_mask" in batch:
            inputs["attention_mask"] = batch["attention_mask"]
        return _features(self.model.get_text_features(**inputs))

    def _image_features(self, pixels: Any) -> Any:
        return _features(self.model.get_image_features(pixel_values=pixels))


def _features(output: Any) -> Any:
    """transformers 5 returns a model output whose ``pooler_output`` holds the projected features; 4.x a tensor."""
    return output if hasattr(output, "dim") else output.pooler_output


class OpenCLIPDualEncoder(DualEncoder):
    """An ``open_clip`` model by architecture and pretrained tag (``ViT-B-32``, ``laion2b_s34b_b79k``).
    Needs ``pip install "rankstack[open_clip]"``; images go through rankstack's reader with the model's
    mean/std and size."""

    def __init__(self, architecture: str, pretrained: str | None = None, device: str | None = None,
                 batch_size: int = 32, threads: int | None = None):  # fmt: skip
        try:
            import open_clip
        except ImportError:
            raise MissingExtraError("open_clip_torch", "open_clip") from None
        self.name = f"open_clip:{architecture}" + (f"/{pretrained}" if pretrained else "")
        self.device = lazy.default_device(device)
        self.model, _, _ = open_clip.create_model_and_transforms(architecture, pretrained=pretrained, device=self.device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(architecture)
        visual = self.model.visual
        size = visual.image_size[0] if isinstance(visual.image_size, tuple | list) else visual.image_size
        mean = tuple(getattr(visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073))
        std = tuple(getattr(visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711))
        self.transform = ImageTransform(int(size), None, mean, std)
        self.batch_size, self.threads = batch_size, threads
        self.dim = int(self.model.text_projection.shape[1])

    @property
    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(self.name.encode()).hexdigest()[:16]

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    def _text_features(self, texts: list[str]) -> Any:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))

    def _image_features(self, pixels: Any) -> Any:
        return self.model.encode_image(pixels)


# ---------------------------------------------------------------------------------- composite
class CompositeDualEncoder(DualEncoder):
    """Any image tower + any Hugging Face text encoder + linear projections into one space.

    LiT-style by default (Zhai et al. 2022): the joint space is the frozen image tower's own feature space
    (``dim`` = the tower's), images are centred (``image_center``, the training images' mean feature, so cosines
    are not dominated by the all-positive mean of post-activation features) and normalised, and only the text
    side learns: a projection from the text encoder's pooled output, optionally with its top layers.
    ``image_projection=True`` adds a learned image projection (then ``dim`` may be chosen).
    """

    def __init__(
        self,
        image_tower: str | EfficientNetTower = "efficientnet-lite0",
        text_model: str | os.PathLike[str] = "minilm",
        *,
        dim: int | None = None,
        image_projection: bool = False,
        pooling: str = "mean",
        max_length: int = 64,
        device: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        seed: int = 0,
        _text_source: Path | None = None,
    ):
        torch = lazy.torch()
        transformers = lazy.transformers()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
        self.device = lazy.default_device(device)
        self.tower = image_tower if isinstance(image_tower, EfficientNetTower) else load_image_tower(image_tower, self.device)
        self.text_name = str(text_model)
        text_path = _text_source or model_dir.resolve(text_model)[0]
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(text_path)
        self.text, _ = lazy.from_pretrained_quietly(transformers.AutoModel, text_path, **model_dir.encoder_kwargs(text_path))
        self.text.to(self.device).eval()
        self.pooling, self.max_length = pooling, max_length
        hidden = int(self.text.config.hidden_size)
        self.dim = int(dim or self.tower.dim)
        if not image_projection and self.dim != self.tower.dim:
            raise RankstackError(f"dim {self.dim} differs from the image tower's {self.tower.dim}: pass "
                                 "image_projection=True to learn a projection, or leave dim unset")  # fmt: skip
        # everything outside the two encoders, in one module: what training optimises besides the text layers;
        # initialised from ``seed`` (without touching the global generator) so a training run is repeatable
        self.heads = torch.nn.Module()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.heads.text_projection = torch.nn.Linear(hidden, self.dim)
            if image_projection:
                self.heads.image_projection = torch.nn.Linear(self.tower.dim, self.dim)
        self.heads.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / _CLIP_TEMPERATURE)))
        self.heads.register_buffer("image_center", torch.zeros(self.tower.dim))
        self.heads.to(self.device)
        self.transform = self.tower.transform
        self.batch_size, self.threads = batch_size, threads
        self.name = f"composite({self.tower.name}+{self.text_name})"

    # ---- the two sides, as differentiable functions (training uses them directly)
    def pool_text(self, texts: list[str]) -> Any:
        """The text encoder's pooled output ``[b, hidden]`` (before the projection)."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = batch.to(self.device)
        states = self.text(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1)

    def project_text(self, pooled: Any) -> Any:
        return self.heads.text_projection(pooled)

    def project_image(self, features: Any) -> Any:
        """Tower features ``[b, tower_dim]`` -> joint space (centred; projected when there is a projection)."""
        centred = features - self.heads.image_center
        return self.heads.image_projection(centred) if self.has_image_projection else centred

    @property
    def has_image_projection(self) -> bool:
        return hasattr(self.heads, "image_projection")

    def _text_features(self, texts: list[str]) -> Any:
        return self.project_text(self.pool_text(texts))

    def _image_features(self, pixels: Any) -> Any:
        return self.project_image(self.tower.features(pixels))

    @property
    def logit_scale(self) -> float:
        return float(self.heads.log_scale.detach().exp())

    def trainable_tensors(self) -> list[Any]:
        return [*self.text.parameters(), *self.heads.state_dict().values()]

    @property
    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256(repr(self.config()).encode())
        for tensor in self.trainable_tensors():
            h.update(tensor.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def config(self) -> dict[str, Any]:
        return {"kind": "composite", "image_tower": self.tower.identity(), "text_tower": "text",
                "text_source": self.text_name, "pooling": self.pooling, "max_length": self.max_length,
                "dim": self.dim, "image_projection": self.has_image_projection}  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> Path:
        """One directory: ``dual_encoder.json``, ``heads.safetensors`` and the text encoder in ``text/``."""
        from safetensors.torch import save_file

        from rankstack.index.manifest import atomic_directory

        out = Path(path)
        with atomic_directory(out, overwrite=True) as tmp:
            model_dir.save_pretrained(tmp / "text", self.text, self.tokenizer)
            state = {k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}
            save_file(state, str(tmp / HEADS_FILE))
            model_dir.write_versioned(tmp / CONFIG_FILE, FORMAT_VERSION, self.config())
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | None = None, batch_size: int = 32,
             threads: int | None = None) -> CompositeDualEncoder:  # fmt: skip
        """Open a directory ``save`` wrote. A directory whose text and image sides disagree in dimension is
        refused with both numbers."""
        from safetensors.torch import load_file

        root = Path(path)
        cfg = model_dir.read_versioned(root / CONFIG_FILE, FORMAT_VERSION)
        if not cfg:
            raise ModelDirectoryError(f"{root} has no {CONFIG_FILE}: not a composite dual encoder saved by rankstack")
        state = load_file(str(root / HEADS_FILE))
        text_dim = int(state["text_projection.weight"].shape[0])
        image_dim = int(state["image_projection.weight"].shape[0]) if "image_projection.weight" in state else None
        tower = load_image_tower(cfg["image_tower"], device)
        image_dim = image_dim if image_dim is not None else tower.dim
        if text_dim != image_dim:
            raise ModelDirectoryError(
                f"{root}: the text side makes {text_dim}-dimensional vectors but the image side {image_dim}-dimensional "
                "ones; a dual encoder needs both in one space. The directory is inconsistent: re-save the model."
            )
        model = cls(tower, cfg.get("text_source", "text"), dim=int(cfg["dim"]), image_projection=bool(cfg["image_projection"]),
                    pooling=cfg["pooling"], max_length=int(cfg["max_length"]), device=device, batch_size=batch_size,
                    threads=threads, _text_source=root / cfg.get("text_tower", "text"))  # fmt: skip
        model.heads.load_state_dict(state, strict=True)
        model.name = str(path)
        return model

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load the weights of a directory ``save`` wrote into this model (training resumes through it)."""
        again = CompositeDualEncoder.load(path, device=self.device)
        self.text.load_state_dict(again.text.state_dict())
        self.heads.load_state_dict(again.heads.state_dict())


def load_dual_encoder(model: str | os.PathLike[str] | DualEncoder, device: str | None = None, **kwargs: Any) -> DualEncoder:
    """A dual encoder by what ``model`` names: a directory ``CompositeDualEncoder.save`` wrote; ``open_clip:ARCH/TAG``;
    otherwise a ``transformers`` CLIP/SigLIP directory or Hub id."""
    if isinstance(model, DualEncoder):
        return model
    text = str(model)
    if text.startswith("composite("):
        raise RankstackError(
            f"{text} is a composite dual encoder that was never saved, so it cannot be loaded by name: pass the model "
            "object itself, or save it (CompositeDualEncoder.save) and build the index with the saved one"
        )
    if text.startswith("open_clip:"):
        architecture, _, pretrained = text.removeprefix("open_clip:").partition("/")
        return OpenCLIPDualEncoder(architecture, pretrained or None, device=device, **kwargs)
    if (Path(text) / CONFIG_FILE).is_file():
        return CompositeDualEncoder.load(text, device=device, **kwargs)
    return HFDualEncoder(text, device=device, **kwargs)
