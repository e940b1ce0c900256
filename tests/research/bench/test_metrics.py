from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import r2_score

from sne_plugin.research.bench.metrics import kendall_tau, r2, scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_kendall_tau_matches_scipy(seed: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 40).astype(float) if ties else rng.normal(size=40)
    b = np.round(a + rng.normal(size=40), 1 if ties else 6)
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b)[0], abs=1e-12)


def test_kendall_tau_degenerate() -> None:
    assert np.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="two 1-D arrays of one length"):
        kendall_tau([1.0, 2.0], [1.0])


def test_r2_and_scores() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 1, 50)
    p = y + rng.normal(scale=0.1, size=50)
    assert r2(y, p) == pytest.approx(r2_score(y, p))
    s = scores(y, p)
    keep = y >= 0.2
    assert s["tau_trained"] == pytest.approx(kendalltau(y[keep], p[keep])[0])
    assert set(s) == {"tau", "tau_trained", "r2", "mae"}
