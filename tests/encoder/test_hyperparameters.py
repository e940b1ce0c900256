"""Bad hyperparameters are an SNEError naming the parameter at ``fit`` (never torch's error),
and ``loss="mse"`` standardises targets of any size: huge ones predict what small ones do,
scaled, never inf."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sne_plugin import SNERegressor
from sne_plugin.errors import SNEError
from sne_plugin.testing import scaled_cnn_zoo

SMALL = dict(width=8, heads=2, chunk_size=8, max_set=16, epochs=1, device="cpu", verbose=False)


@pytest.fixture(scope="module")
def zoo():
    return scaled_cnn_zoo(12, seed=5)


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("lr", math.nan, r"lr must be a finite number > 0, but got lr=nan"),
        ("lr", math.inf, r"lr must be a finite number > 0, but got lr=inf"),
        ("lr", -1e-3, r"lr must be a finite number > 0, but got lr=-0\.001"),
        ("lr", 0, r"lr must be a finite number > 0, but got lr=0"),
        ("lr", "0.01", r"lr must be a finite number > 0, but got lr='0\.01'"),
        ("lr", None, r"lr must be a finite number > 0, but got lr=None"),
        ("weight_decay", -1.0, r"weight_decay must be a finite number >= 0, but got "),
        ("weight_decay", math.nan, r"weight_decay must be a finite number >= 0"),
        ("invariance_weight", math.inf, r"invariance_weight must be a finite number >= 0"),
        ("invariance_weight", [0.1], r"invariance_weight must be a finite number >= 0"),
        ("validation_fraction", math.nan, r"validation_fraction must be in \[0, 1\)"),
        ("validation_fraction", "0.1", r"validation_fraction must be in \[0, 1\)"),
        ("batch_size", 2.5, r"batch_size must be a positive integer, but got batch_size=2\.5"),
        ("batch_size", True, r"batch_size must be a positive integer, but got batch_size=True"),
        ("epochs", -3, r"epochs must be a positive integer"),
        ("patience", -1, r"patience must be an integer >= 0, but got patience=-1"),
        ("patience", math.inf, r"patience must be an integer >= 0"),
        ("warm_start", "yes", r"warm_start must be True or False, but got 'yes'"),
        ("tensor_stats", None, r"tensor_stats must be True or False"),
    ],
)
def test_bad_hyperparameters_name_themselves(zoo, param, value, message) -> None:
    nets, y = zoo
    with pytest.raises(SNEError, match=message):
        SNERegressor(**{**SMALL, param: value}).fit(nets, y)


def test_numpy_numbers_are_accepted(zoo) -> None:
    nets, y = zoo
    params = dict(lr=np.float32(2e-3), weight_decay=np.float64(0), batch_size=np.int64(8))
    assert SNERegressor(**{**SMALL, **params}).fit(nets, y).n_epochs_ >= 1


@pytest.fixture(scope="module")
def small(zoo) -> np.ndarray:
    nets, y = zoo
    return SNERegressor(**SMALL, loss="mse", random_state=0).fit(nets, y).predict(nets)


@pytest.mark.parametrize("scale", [1e30, 1e200])
def test_huge_mse_targets_predict_the_small_ones_scaled(zoo, small, scale: float) -> None:
    nets, y = zoo
    huge = SNERegressor(**SMALL, loss="mse", random_state=0).fit(nets, y * scale).predict(nets)
    assert np.isfinite(huge).all()
    np.testing.assert_allclose(huge / scale, small, rtol=1e-4, atol=1e-6)


def test_huge_negative_and_offset_targets_stay_finite(zoo) -> None:
    nets, y = zoo
    for target in (-1e250 * y, 1e299 + 1e290 * y):
        out = SNERegressor(**SMALL, loss="mse", random_state=0).fit(nets, target).predict(nets)
        assert np.isfinite(out).all() and (np.sign(out) == np.sign(target[0])).all()


def test_targets_too_large_to_predict_are_refused(zoo) -> None:
    nets, y = zoo
    with pytest.raises(SNEError, match=r"loss='mse' needs targets within \+-1e\+300, got "):
        SNERegressor(**SMALL, loss="mse").fit(nets, y * 1e306)
