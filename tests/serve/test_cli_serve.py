from __future__ import annotations

from typer.testing import CliRunner

from rankstack.cli import app
from tests.serve.conftest import write_spec


def test_check_prints_the_pipeline_a_spec_builds(served):
    spec = write_spec(served, 'title = "Toy"\n[retrievers.bm25]\nindex = "toy"\nk = 50\n', "cli.toml")
    result = CliRunner().invoke(app, ["serve", str(spec), "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Toy: rankstack.open(") and "bm25(k1=0.9, b=0.4, k=50)" in result.output


def test_a_bad_spec_is_one_line_naming_file_and_line(served):
    spec = write_spec(served, '[retrievers.bm25]\nindex = "toy"\nk1 = 0.9\nboost = 2\n', "bad.toml")
    result = CliRunner().invoke(app, ["serve", str(spec), "--check"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "bad.toml line 4: retriever 'bm25' (bm25 index) has no option 'boost'" in str(
        result.exception
    )


def test_workers_and_port_are_checked(served):
    result = CliRunner().invoke(app, ["serve", str(served / "toy"), "--workers", "0"])
    assert result.exit_code != 0 and "--workers must be at least 1" in result.output
    result = CliRunner().invoke(app, ["serve", str(served / "toy"), "--port", "70000"])
    assert result.exit_code != 0 and "--port must be 1..65535" in result.output
