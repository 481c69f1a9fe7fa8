"""Line reading: every newline convention, a byte-order mark, exact line numbers."""

from __future__ import annotations

import pytest

from rankstack.errors import InputFormatError
from rankstack.lines import iter_lines
from rankstack.types import Qrels, Ranking

RUN = ["301 Q0 d1 1 2.5 t", "301 Q0 d2 2 1.5 t", "302 Q0 d3 1 0.5 t"]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_newline_convention_reads_the_same(tmp_path, newline):
    path = tmp_path / "run.trec"
    path.write_bytes(("\ufeff" + newline.join(RUN) + newline).encode("utf-8"))
    assert [line for _, line in iter_lines(path)] == RUN
    run = Ranking.read_trec(path)
    assert run.qid.tolist() == ["301", "301", "302"] and run.docid.tolist() == ["d1", "d2", "d3"]


def test_line_numbers_count_bare_carriage_returns(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_bytes(b"1 0 d1 1\r1 0 d2 x\r")
    with pytest.raises(InputFormatError) as err:
        Qrels.read(path)
    assert err.value.line == 2
