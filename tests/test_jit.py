"""Compiled kernels are cached on disk wherever the package lives, and a one-off search needs no compiler."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from rankstack import jit

REPO = Path(__file__).resolve().parents[1]

KERNEL = """
from rankstack.jit import njit

@njit()
def total(n):
    s = 0
    for i in range(n):
        s += i
    return s
"""


def _run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_package_dir_that_cannot_be_written_caches_in_the_users_cache_dir(tmp_path):
    """As for a pip install into a read-only site-packages: numba falls back to ~/.cache/numba (root can
    write anywhere, so the in-tree location is refused by patching it)."""
    (tmp_path / "kernels_ro.py").write_text(KERNEL)
    code = """
        import numba.core.caching as caching
        def refuse(self):
            raise OSError("read-only")
        caching.InTreeCacheLocator.ensure_cache_path = refuse
        import kernels_ro
        assert kernels_ro.total(10) == 45
    """
    cache_home = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache_home), "NUMBA_CACHE_DIR": ""}
    done = _run(code, tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "__pycache__").exists() or not list((tmp_path / "__pycache__").glob("*.nbi"))
    assert list(cache_home.rglob("kernels_ro.total-*.nbi")), "no cache index in the user's cache directory"


def test_no_writable_cache_anywhere_still_runs_with_a_warning(tmp_path):
    (tmp_path / "kernels_none.py").write_text(KERNEL)
    code = """
        import warnings
        import numba.core.caching as caching
        for locator in caching.CacheImpl._locator_classes:
            locator.from_function = classmethod(lambda cls, *a: None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import kernels_none
        assert kernels_none.total(10) == 45
        assert any("compiled in each process" in str(w.message) for w in caught), [str(w.message) for w in caught]
    """
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_one_off_search_answers_without_loading_numba(tmp_path):
    """The first few small batches of a process run on numpy: no compiled kernel, no numba import."""
    code = f"""
        import sys
        from rankstack import Document, Queries
        from rankstack.index import build_inverted_index, open_index
        docs = [Document(str(i), f"word{{i % 7}} shared text {{i}}") for i in range(50)]
        build_inverted_index(docs, {str(tmp_path / "idx")!r}, show_progress=False)
        index = open_index({str(tmp_path / "idx")!r})
        run = index.bm25(k=5)(Queries(["q"], ["word3 shared"]))
        assert len(run) == 5, len(run)
        assert "numba" not in sys.modules, "numba was imported for one query"
    """
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr


def test_announce_speaks_once_and_only_when_something_will_compile(tmp_path, monkeypatch, capsys):
    def dispatcher(index_exists: bool, compiled: bool = False):
        index = tmp_path / f"k{index_exists}.nbi"
        if index_exists:
            index.write_text("")
        cache = SimpleNamespace(_cache_file=SimpleNamespace(_index_path=str(index)))
        return SimpleNamespace(signatures=["x"] if compiled else [], _cache=cache)

    monkeypatch.setattr(jit, "_announced", False)
    jit.announce(dispatcher(True), dispatcher(False, compiled=True))
    assert capsys.readouterr().err == ""
    jit.announce(dispatcher(False))
    assert "compiling search kernels, once" in capsys.readouterr().err
    jit.announce(dispatcher(False))
    assert capsys.readouterr().err == ""
    assert jit.is_cached(SimpleNamespace(signatures=[]))  # no cache attribute: nothing to say


def test_warmup_runs_every_kernel_family():
    from typer.testing import CliRunner

    from rankstack.cli import app

    result = CliRunner().invoke(app, ["warmup"])
    assert result.exit_code == 0, result.output
    assert "kernels ready" in result.output


def test_started_says_whether_a_kernel_has_run_in_this_process(tmp_path):
    """What ``TermMapper`` asks before taking its compiled scan in a build: no kernel yet in a fresh process
    (even with numba imported and kernels declared), then yes once one has run."""
    (tmp_path / "kernels_started.py").write_text(KERNEL)
    code = """
        import numba
        from rankstack import jit
        import kernels_started
        assert not jit.started()
        assert kernels_started.total(4) == 6
        assert jit.started()
    """
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_build_in_a_fresh_process_analyses_in_python_until_past_the_threshold(tmp_path):
    code = """
        from rankstack.index.inverted import _TermIds
        from rankstack.text.analysis import Analyzer, TermMapper

        mapper = TermMapper(Analyzer(), _TermIds())
        mapper.compiled_after = 30
        mapper.map(["twenty characters ok"])
        assert mapper._table is None and mapper.characters == 20
        mapper.map(["another twenty chars"])  # 20 seen: still below
        assert mapper._table is None
        ids, counts = mapper.map(["now compiled: running runs"])
        assert mapper._table is not None and list(counts) == [4]
        assert [mapper.vocab.names[i] for i in ids] == ["now", "compil", "run", "run"]
    """
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
