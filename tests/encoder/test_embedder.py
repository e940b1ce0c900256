"""SNEEmbedder: scikit-learn's checks, a Pipeline and a grid search with any regressor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sne_plugin import SNEEmbedder, SNEError, SNERegressor

_ENCODER = {"width": 8, "heads": 2, "epochs": 1, "loss": "mse", "random_state": 0}
_ANY_SIZE = "networks of any size are valid input: there is no fixed n_features_in_"
_WRAPPER = "non-array wrappers of matrices are not lists of networks"
EXPECTED_FAILED_CHECKS = {
    "check_n_features_in_after_fitting": _ANY_SIZE,
    "check_n_features_in": _ANY_SIZE,
    "check_transformer_general": _ANY_SIZE,
    "check_dtype_object": "an object array is read as a list of networks, not a matrix",
    "check_transformer_data_not_an_array": _WRAPPER,
    "check_methods_sample_order_invariance": (
        "float32 batched math: results in another order agree to ~1e-6, the check asks 1e-7"
    ),
    "check_methods_subset_invariance": (
        "float32 batched math: results on a subset agree to ~1e-6, the check asks 1e-7"
    ),
}


@parametrize_with_checks(
    [SNEEmbedder(SNERegressor(**_ENCODER))],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def _networks(n: int) -> tuple[list[list[torch.Tensor]], np.ndarray]:
    gen = torch.Generator().manual_seed(0)
    scales = np.linspace(0.2, 2.0, n)
    nets = [
        [torch.randn(6, 4, generator=gen) * s, torch.randn(3, 6, generator=gen)] for s in scales
    ]
    return nets, scales / scales.max()  # the target follows the weights' scale


def test_pipeline_and_grid_search() -> None:
    nets, y = _networks(12)
    pipe = Pipeline([("sne", SNEEmbedder(SNERegressor(**_ENCODER))), ("head", Ridge())])
    grid = GridSearchCV(pipe, {"head__alpha": [0.1, 10.0], "sne__regressor__width": [8]}, cv=2)
    grid.fit(nets, y)
    assert set(grid.best_params_) == {"head__alpha", "sne__regressor__width"}
    assert grid.predict(nets).shape == (12,)
    embed = grid.best_estimator_.named_steps["sne"]
    assert embed.transform(nets).shape == (12, 8)
    assert list(embed.get_feature_names_out()[:2]) == ["sneembedder0", "sneembedder1"]


def test_embeddings_are_the_regressors() -> None:
    nets, y = _networks(8)
    embed = SNEEmbedder(SNERegressor(**_ENCODER)).fit(nets, y)
    direct = clone(SNERegressor(**_ENCODER)).fit(nets, y)
    np.testing.assert_allclose(embed.transform(nets), direct.transform(nets), rtol=1e-5)


def test_needs_targets_and_a_regressor() -> None:
    nets, y = _networks(4)
    with pytest.raises(
        SNEError, match=r"requires y to be passed.*\(fit\(X, y\), one target per network\)"
    ):
        SNEEmbedder().fit(nets)
    with pytest.raises(SNEError, match="to be an SNERegressor or None, got Ridge"):
        SNEEmbedder(Ridge()).fit(nets, y)  # type: ignore[arg-type]
