"""scikit-learn's own estimator checks, with the ones that cannot apply to networks listed."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from sne_plugin import SNERegressor

_ANY_SIZE = (
    "networks of any size are valid input: a row of another length is another architecture, "
    "not an error"
)
_WRAPPER = "non-array wrappers of matrices are not lists of networks"
EXPECTED_FAILED_CHECKS = {
    "check_n_features_in_after_fitting": _ANY_SIZE,
    "check_n_features_in": _ANY_SIZE + "; there is no fixed n_features_in_",
    "check_estimators_partial_fit_n_features": _ANY_SIZE,
    "check_transformer_general": _ANY_SIZE,
    "check_dtype_object": "an object array is read as a list of networks, not a matrix",
    "check_regressors_train": (
        "a list of lists of floats is a list of networks (each a list of arrays), not a matrix"
    ),
    "check_regressor_data_not_an_array": _WRAPPER,
    "check_transformer_data_not_an_array": _WRAPPER,
    "check_methods_sample_order_invariance": (
        "float32 batched math: results in another order agree to ~1e-6, the check asks 1e-7"
    ),
    "check_methods_subset_invariance": (
        "float32 batched math: results on a subset agree to ~1e-6, the check asks 1e-7"
    ),
}


@parametrize_with_checks(
    [
        SNERegressor(width=8, heads=2, epochs=1, loss="mse", random_state=0),
        # a ranking score and the stats branch keep every contract too
        SNERegressor(
            width=8, heads=2, epochs=1, loss="pairwise", stats_branch=True, random_state=0
        ),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)
