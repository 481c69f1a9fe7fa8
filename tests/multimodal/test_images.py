"""Reading images: every kind of bad file is reported by path and skipped; good files keep their batch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from rankstack.multimodal.images import ImageBatches, ImageError, ImageTransform, open_image

pytestmark = pytest.mark.collection


def _bad_files(tmp_path, photo):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photo.read_bytes()[: photo.stat().st_size // 3])
    return {"missing": tmp_path / "missing.jpg", "empty": empty, "text": text, "truncated": truncated}


@pytest.mark.parametrize("kind,reason", [("missing", "no such file"), ("empty", "empty file"),
                                         ("text", "not an image"), ("truncated", "truncated")])  # fmt: skip
def test_bad_files_raise_with_path_and_reason(tmp_path, photos, kind, reason):
    path = _bad_files(tmp_path, photos[0])[kind]
    with pytest.raises(ImageError, match=reason) as err:
        open_image(path)
    assert err.value.path == str(path)


def test_decompression_bomb_refused_from_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9600, 9600)).save(bomb)  # 92 megapixels of one colour: a few kB on disk
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageError, match="decompression bomb"):
        open_image(bomb)
    small = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(small)
    with pytest.raises(ImageError, match="200 pixels is over the limit of 100"):
        open_image(small, max_pixels=100)


def test_exif_orientation_and_modes(tmp_path):
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.new("RGB", (40, 20), "red").save(rotated, exif=exif)
    assert open_image(rotated).size == (20, 40)
    grey = tmp_path / "grey.png"
    Image.new("LA", (8, 8)).save(grey)
    assert open_image(grey).mode == "RGB"


def test_transform_resize_crop_and_scaling(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 100), (127, 127, 127)).save(path)
    t = ImageTransform(size=32, resize=40, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
    pixels = t(open_image(path))
    assert pixels.shape == (3, 32, 32) and pixels.dtype == np.float32
    np.testing.assert_allclose(pixels, 0.0, atol=1e-6)  # (127 - 127) / 128
    square = ImageTransform(size=16, square=True)(open_image(path))
    assert square.shape == (3, 16, 16)
    with pytest.raises(ValueError, match="unknown image transform settings"):
        ImageTransform.from_dict({"size": 8, "colour": "yes"})


def test_batches_skip_bad_files_and_keep_the_rest(tmp_path, photos):
    bad = _bad_files(tmp_path, photos[0])
    paths = [photos[0], bad["missing"], photos[1], bad["truncated"], bad["empty"], photos[2], bad["text"]]
    batches = ImageBatches(paths, ImageTransform(size=24), batch_size=2, threads=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(batches)
    assert [rows for rows, _ in got] == [[0, 2], [5]]
    assert all(px.shape[1:] == (3, 24, 24) for _, px in got)
    assert sorted(p for p, _ in batches.skipped) == sorted(str(p) for k, p in bad.items())
    assert len([w for w in caught if "skipping image" in str(w.message)]) == 4
    single = ImageTransform(size=24)(open_image(photos[2]))
    np.testing.assert_array_equal(got[1][1][0], single)  # threads change nothing
