"""Reading images for a model: Pillow decoding, EXIF orientation, RGB, resize and centre crop, in a thread pool.

A collection of photos always holds a few bad files (missing, empty, truncated, not an image, absurdly large);
each is reported by path and skipped, never allowed to crash a build or drop the rest of its batch. Decoding and
resizing run in Pillow's C code, which releases the GIL, so a thread pool decodes several images at once while
the model runs; at most a few batches of decoded pixels are held in memory at any time.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import MissingExtraError, RankstackError

# Pillow's own decompression-bomb threshold (its warning level): ~89 megapixels, ~268 MB of RGB once decoded.
DEFAULT_MAX_PIXELS = 89_478_485
_RESAMPLE = ("bicubic", "bilinear", "nearest", "lanczos")


class ImageError(RankstackError, ValueError):
    """An image file that cannot be used; names the file and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def pillow() -> Any:
    try:
        import PIL.Image
        import PIL.ImageOps
    except ImportError:
        raise MissingExtraError("pillow", "multimodal") from None
    return PIL


def open_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """A fully decoded RGB ``PIL.Image``, turned upright by its EXIF orientation.

    Raises ``ImageError`` (with the path) for a missing, empty, unreadable, truncated or too large file. The size
    is checked from the header, before any pixel is decoded, so a decompression bomb costs nothing.
    """
    PIL = pillow()
    p = Path(path)
    if not p.is_file():
        raise ImageError(p, "no such file")
    if p.stat().st_size == 0:
        raise ImageError(p, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            image = PIL.Image.open(p)
    except PIL.Image.DecompressionBombError as e:
        raise ImageError(p, f"refused as a possible decompression bomb ({e})") from None
    except (PIL.UnidentifiedImageError, OSError) as e:
        raise ImageError(p, f"not an image Pillow can read ({type(e).__name__})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageError(
            p,
            f"{width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} (a decompression "
            "bomb?); pass a larger max_pixels if you trust this file",
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(p, f"cannot be decoded, truncated or corrupt ({e})") from None
    image = PIL.ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" else image.convert("RGB")


@dataclasses.dataclass(frozen=True)
class ImageTransform:
    """How a model wants its pixels: resize, crop to ``size`` x ``size``, scale, normalise per channel.

    ``resize`` is the shorter side before the centre crop (``None``: ``size``); ``square=True`` resizes straight
    to ``size`` x ``size`` without cropping (SigLIP). ``mean`` and ``std`` are in [0, 1] units, as in Hugging
    Face image processor configs: EfficientNet-Lite's ``(pixel - 127) / 128`` is mean 127/255, std 128/255.
    """

    size: int = 224
    resize: int | None = None
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    square: bool = False
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.resample not in _RESAMPLE:
            raise ValueError(f"resample must be one of {_RESAMPLE}, not {self.resample!r}")
        if self.size < 1 or (self.resize is not None and self.resize < self.size):
            raise ValueError(f"need 1 <= size <= resize, got size={self.size}, resize={self.resize}")

    def __call__(self, image: Any) -> np.ndarray:
        """float32 ``[3, size, size]`` from an RGB ``PIL.Image``."""
        PIL = pillow()
        resample = getattr(PIL.Image.Resampling, self.resample.upper())
        if self.square:
            image = image.resize((self.size, self.size), resample)
        else:
            short = self.resize or self.size
            w, h = image.size
            scale = short / min(w, h)
            new_w, new_h = max(short, round(w * scale)), max(short, round(h * scale))
            image = image.resize((new_w, new_h), resample)
            left, top = (new_w - self.size) // 2, (new_h - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImageTransform:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown image transform settings {unknown}; known: {sorted(known)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)


def load_pixels(path: str | os.PathLike[str], transform: ImageTransform, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One image, decoded and transformed (``ImageError`` when it cannot be)."""
    return transform(open_image(path, max_pixels))


def default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class ImageBatches:
    """Iterate ``(positions, pixels)`` batches over ``paths``: ``pixels`` is float32 ``[b, 3, H, W]`` and
    ``positions`` says which of ``paths`` its rows are. Files that fail are left out of their batch, listed in
    ``skipped`` as ``(path, reason)`` and warned about once each.

    ``threads`` images are decoded at once; no more than two batches of decoded pixels wait in memory.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        transform: ImageTransform,
        batch_size: int = 32,
        threads: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        show_progress: bool = False,
        desc: str = "reading images",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.paths = [str(p) for p in paths]
        self.transform, self.batch_size, self.max_pixels = transform, batch_size, max_pixels
        self.threads = threads or default_threads()
        self.show_progress, self.desc = show_progress, desc
        self.skipped: list[tuple[str, str]] = []

    def _load(self, path: str) -> np.ndarray | ImageError:
        try:
            return load_pixels(path, self.transform, self.max_pixels)
        except ImageError as e:
            return e

    def __iter__(self) -> Iterator[tuple[list[int], np.ndarray]]:
        from rankstack.models.lazy import progress

        bar = progress(len(self.paths), self.desc, self.show_progress, unit="image")
        window = 2 * self.batch_size
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            pending: deque[tuple[int, Future[np.ndarray | ImageError]]] = deque()
            next_path = 0
            positions: list[int] = []
            rows: list[np.ndarray] = []
            while pending or next_path < len(self.paths):
                while next_path < len(self.paths) and len(pending) < window:
                    pending.append((next_path, pool.submit(self._load, self.paths[next_path])))
                    next_path += 1
                position, future = pending.popleft()
                result = future.result()
                bar.update(1)
                if isinstance(result, ImageError):
                    self.skipped.append((result.path, result.reason))
                    warnings.warn(f"skipping image {result}", stacklevel=2)
                else:
                    positions.append(position)
                    rows.append(result)
                if len(rows) == self.batch_size:
                    yield positions, np.stack(rows)
                    positions, rows = [], []
            if rows:
                yield positions, np.stack(rows)
        bar.close()
