"""ONNX export and dynamic int8 quantisation of a transformer (extra ``[onnx]``).

For an encoder (``head="hidden"``) the exported graph maps ``(input_ids, attention_mask)`` to the last
hidden state; pooling and normalisation stay in rankstack, so one export serves every pooling. For a
cross-encoder (``head="logits"``) it maps ``(input_ids, attention_mask[, token_type_ids])`` to the
classification head's logits. Files follow sentence-transformers'
layout (``onnx/model.onnx``, ``onnx/model_qint8.onnx``), so the directory stays an ordinary model
directory. Dynamic quantisation stores weights as int8 and quantises activations per batch at run time:
on CPU it runs the matrix products in int8 (VNNI/AVX-512 where present) for a small loss in accuracy,
which ``benchmarks/bench_dense.py`` measures as nDCG@10. A cross-encoder keeps its lower layers' feed-forward
output projections in fp32 (``_fp32_nodes``): a re-ranker's order is more fragile than an embedding's cosine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import MissingExtraError
from rankstack.models import model_dir

FP32 = "model.onnx"
SOURCE = "source.json"
INT8 = "model_qint8.onnx"


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(module, "onnx") from None


Head = Literal["hidden", "logits"]


def export_onnx(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    quantize: bool = True,
    opset: int = 17,
    head: Head = "hidden",
) -> Path:
    """Write ``onnx/model.onnx`` (and ``onnx/model_qint8.onnx``) for ``model``; returns the model directory.

    ``out=None`` writes into the model's own directory; otherwise ``out`` becomes a model directory with
    the tokenizer and configs copied beside the ONNX files (and the source weights' fingerprint, so dense
    indexes built with the PyTorch model accept it). ``head="logits"`` exports a sequence-classification
    model (a cross-encoder) with its head; ``"hidden"`` the bare encoder.
    """
    torch = _require("torch")
    _require("onnx")
    from transformers import AutoModel, AutoModelForSequenceClassification

    if head not in ("hidden", "logits"):
        raise ValueError(f"head must be 'hidden' or 'logits', not {head!r}")

    src, _ = model_dir.resolve(model)
    model_dir.check_directory(src)
    dest = Path(out) if out is not None else src
    onnx_dir = dest / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    if dest != src:
        for f in src.iterdir():
            if f.is_file() and f.name not in model_dir.WEIGHT_FILES:
                shutil.copy2(f, dest / f.name)
            elif f.is_dir() and f.name != "onnx":
                shutil.copytree(f, dest / f.name, dirs_exist_ok=True)
    # which weights the graphs were made from: a directory whose weights change later (re-training, save())
    # must not keep running the old graphs unnoticed (``open_session`` compares)
    (onnx_dir / SOURCE).write_text(json.dumps({"fingerprint": model_dir.fingerprint(src)}), encoding="utf-8")

    loader = AutoModel if head == "hidden" else AutoModelForSequenceClassification
    # eager attention exports as plain MatMul/Softmax nodes that ONNX Runtime's optimiser fuses into its
    # Attention kernel (about 1.5x faster on CPU than the exported scaled-dot-product graph)
    try:
        inner = loader.from_pretrained(src, attn_implementation="eager")
    except (TypeError, ValueError):
        inner = loader.from_pretrained(src)
    # an encoder sees single texts (segment 0 throughout); a cross-encoder needs the pair's segment ids
    pairs = head == "logits" and uses_token_types(inner.config)
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if pairs else [])
    output = "last_hidden_state" if head == "hidden" else "logits"

    class _Graph(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: Any) -> Any:
            return getattr(self.inner(**dict(zip(inputs, tensors))), output)

    net = _Graph(inner.eval())
    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in inputs)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in [*inputs, output]}
    if head == "logits":
        dynamic[output] = {0: "batch"}
    tmp = onnx_dir / f".{FP32}.tmp"
    import warnings

    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            example,
            str(tmp),
            input_names=inputs,
            output_names=[output],
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    _optimize(tmp, inner.config)
    tmp.replace(onnx_dir / FP32)
    if quantize:
        quantization = _require("onnxruntime.quantization")
        tmp = onnx_dir / f".{INT8}.tmp"
        # per-channel int8 weights on the matrix products only: on all-MiniLM-L6-v2 this keeps cosine
        # similarity to fp32 at 0.995 on average, where per-tensor weights fall to 0.94
        quantization.quantize_dynamic(
            str(onnx_dir / FP32),
            str(tmp),
            weight_type=quantization.QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=_fp32_nodes(onnx_dir / FP32) if head == "logits" else [],
            extra_options={"DefaultTensorType": _require("onnx").TensorProto.FLOAT},
        )
        tmp.replace(onnx_dir / INT8)
    return dest


_FFN_OUT = re.compile(r"layers?\.(\d+)/(?:output/dense|ffn/lin2|mlp/fc2)/MatMul$")


def _fp32_nodes(path: Path) -> list[str]:
    """The feed-forward output projections of the lower half of the layers, kept in fp32 for a cross-encoder.

    Their input (the GELU output) has the widest range in the network, so quantising it per batch costs
    the most; measured on a MiniLM-L6 cross-encoder trained on SciFact (15 queries x BM25 top 20), most of
    the int8 ranking error came from layers 0-2: keeping those three in fp32 raised Kendall's tau with the
    fp32 ranking from 0.913 to 0.940 (top-10 overlap 0.94 -> 0.98) for about 5% of the int8 speed-up.
    """
    onnx = _require("onnx")
    found = []
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        match = _FFN_OUT.search(node.name) if node.op_type == "MatMul" else None
        if match:
            found.append((int(match.group(1)), node.name))
    layers = 1 + max((layer for layer, _ in found), default=-1)
    return [name for layer, name in found if layer < layers // 2]


def uses_token_types(config: Any) -> bool:
    """Whether the model reads segment ids (BERT-style pair inputs): cross-encoders must pass them."""
    return int(getattr(config, "type_vocab_size", 0) or 0) > 1


_FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "deberta-v2"}


def _optimize(path: Path, config: Any) -> None:
    """Fuse attention, GELU and layer norms with ONNX Runtime's transformer optimiser, in place; models
    it does not know are left as exported."""
    kind = getattr(config, "model_type", "")
    if kind not in _FUSABLE:
        return
    from onnxruntime.transformers.optimizer import optimize_model

    heads = getattr(config, "num_attention_heads", 0) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", 0) or getattr(config, "dim", 0)
    model_type = {"xlm-roberta": "bert", "roberta": "bert", "electra": "bert", "mpnet": "bert", "deberta-v2": "bert"}
    optimized = optimize_model(str(path), model_type=model_type.get(kind, kind), num_heads=heads, hidden_size=hidden)
    optimized.save_model_to_file(str(path))


def _check_fresh(path: Path) -> None:
    """Refuse ONNX graphs exported from other weights than the ones now in the directory."""
    source = path / "onnx" / SOURCE
    has_weights = any((path / f).exists() for f in model_dir.WEIGHT_FILES)
    if not (source.exists() and has_weights):
        return
    try:
        recorded = json.loads(source.read_text(encoding="utf-8"))["fingerprint"]
    except (OSError, ValueError, KeyError):
        return
    if recorded != model_dir.fingerprint(path):
        raise model_dir.ModelDirectoryError(
            f"{path}/onnx was exported from other weights than the directory holds now (it was saved or trained "
            "again since); export it again: `rankstack export-onnx " + str(path) + "`"
        )


def open_session(path: Path, quantized: bool = True, threads: int | None = None) -> Any:
    ort = _require("onnxruntime")
    name = INT8 if quantized else FP32
    file = path / "onnx" / name
    if not file.exists():
        raise model_dir.ModelDirectoryError(
            f"{path} has no onnx/{name}; make it with `rankstack.dense.export_onnx({str(path)!r})` "
            "(or `rankstack export-onnx MODEL`)."
        )
    _check_fresh(path)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle worker threads sleep instead of spinning: on a machine shared with other work, spinning threads
    # steal the cores they wait for (measured: 19 vs 23 docs/s with one core busy elsewhere)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
