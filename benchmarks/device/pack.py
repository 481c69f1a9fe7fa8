"""Pack what a lent GPU machine needs beside the repository into ``.gpu/`` (git-ignored; carried with the
working tree, 64 MiB at most): the packaged all-MiniLM-L6-v2 with float16 weights (45 MB; ``unpack.py`` casts
them back to float32 there) and the collections named on the command line.

    .venv/bin/python benchmarks/device/pack.py scifact nfcorpus

The machine has PyTorch and transformers but no PyStemmer: download its wheel for that machine's Python into
``.whl/`` (``pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl PyStemmer``).
"""

import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from rankstack.models.model_dir import packaged_path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"


def main(collections: list[str]) -> None:
    src, dst = packaged_path("minilm"), REPO / ".gpu" / "minilm"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino", "*.onnx"))
    for f in src.glob("*.safetensors"):
        save_file({k: v.half() for k, v in load_file(f).items()}, dst / f.name)
    for name in collections:
        shutil.rmtree(REPO / ".gpu" / "data" / name, ignore_errors=True)
        shutil.copytree(DATA / name, REPO / ".gpu" / "data" / name)
    print("packed", sorted(p.name for p in (REPO / ".gpu").iterdir()))


if __name__ == "__main__":
    main(sys.argv[1:])
