"""Short forms come from stages registered by their packages: a fresh process gets them without importing
the stage packages itself, and index/ never imports them (import-linter checks the code; this the behaviour)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rankstack.errors import RankstackError
from rankstack.index.stages import register_stage, stage_factory


def test_a_fresh_process_finds_bm25_without_importing_sparse_first(tmp_path):
    code = (
        "import sys, rankstack\n"
        "from rankstack.index import build_inverted_index\n"
        "from rankstack.types import Document, Queries\n"
        f"idx = build_inverted_index([Document('a', 'cat sat'), Document('b', 'dog')], {str(tmp_path / 'i')!r}, show_progress=False)\n"
        "assert 'rankstack.sparse' not in sys.modules\n"
        "print(idx.bm25(k=1)(Queries(['q'], ['cat'])).docid.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['a']"


def test_unknown_and_registered_factories():
    with pytest.raises(RankstackError, match="no stage is registered"):
        stage_factory("colbert-nope")
    register_stage("echo-test", lambda index, **kw: (index, kw))
    assert stage_factory("echo-test")("idx", k=3) == ("idx", {"k": 3})
