"""Each baseline learns a known function of the weights (held-out Kendall tau)."""

from __future__ import annotations

import pytest
from scipy.stats import kendalltau


@pytest.mark.parametrize("name", ["statnn", "flat_mlp", "deepsets"])
def test_learns_one_architecture(name, fast, zoo_one):
    nets, y = zoo_one
    model = fast[name]().fit(nets[:120], y[:120])
    tau = kendalltau(model.predict(nets[120:]), y[120:]).statistic
    assert tau > 0.6


@pytest.mark.parametrize("name", ["statnn", "deepsets"])
def test_learns_across_architectures(name, fast, zoo_mixed):
    nets, y = zoo_mixed
    model = fast[name]().fit(nets[:120], y[:120])
    tau = kendalltau(model.predict(nets[120:]), y[120:]).statistic
    assert tau > 0.6
