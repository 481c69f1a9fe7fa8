"""The settings merge every re-ranker family shares: defaults < saved < given, misspelt keywords refused."""

from __future__ import annotations

import pytest

from rankstack.rerank.settings import merged_settings


def test_merged_settings_order_and_refusal():
    defaults = {"kernels": 11, "sigma": 0.1}
    assert merged_settings("KNRM", defaults, {"kernels": 21}, {"sigma": 0.05}) == {"kernels": 21, "sigma": 0.05}
    assert merged_settings("KNRM", defaults, {"kernels": 21}, {"kernels": 5})["kernels"] == 5
    with pytest.raises(TypeError, match=r"KNRM has no setting \['kernal'\] \(it has \['kernels', 'sigma'\]\)"):
        merged_settings("KNRM", defaults, {}, {"kernal": 3})
