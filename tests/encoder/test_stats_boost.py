"""``stats_boost``: gradient-boosted trees and a forest of extremely randomized trees on the
weight statistics beside the set encoder, the three predictions averaged; the trees as plain
arrays (saved without pickle)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor

from sne_plugin import SNEError, SNERegressor
from sne_plugin._trees import TreeEnsemble
from sne_plugin.testing import scaled_cnn_zoo


def test_tree_arrays_predict_as_the_booster_does_with_missing_values() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 12))
    X[rng.random(X.shape) < 0.2] = np.nan
    y = np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 5]) ** 2
    booster = HistGradientBoostingRegressor(random_state=0).fit(X, y)
    trees = TreeEnsemble.from_arrays(TreeEnsemble.from_hgb(booster).to_arrays())
    X_new = rng.normal(size=(400, 12))
    X_new[rng.random(X_new.shape) < 0.3] = np.nan
    np.testing.assert_allclose(trees.predict(X_new), booster.predict(X_new), rtol=0, atol=1e-12)


def test_forest_arrays_predict_as_the_forest_does_on_filled_missing_values() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 6)).astype(np.float32).astype(np.float64)
    y = X[:, 0] - X[:, 3] ** 2
    forest = ExtraTreesRegressor(n_estimators=30, random_state=0).fit(X, y)
    fill = np.median(X, axis=0)
    trees = TreeEnsemble.from_arrays(TreeEnsemble.from_forest(forest, fill).to_arrays())
    X_new = rng.normal(size=(300, 6)).astype(np.float32).astype(np.float64)
    X_new[rng.random(X_new.shape) < 0.3] = np.nan
    filled = np.where(np.isnan(X_new), fill, X_new)
    np.testing.assert_allclose(trees.predict(X_new), forest.predict(filled), rtol=0, atol=1e-12)


def test_joined_and_scaled_ensembles_predict_the_weighted_sum() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 4))
    y = np.sin(X[:, 0]) + X[:, 1]
    booster = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(X, y)
    forest = ExtraTreesRegressor(n_estimators=10, random_state=0).fit(X, y)
    joined = (
        TreeEnsemble.from_hgb(booster)
        .scaled(0.25)
        .join(TreeEnsemble.from_forest(forest, np.zeros(4)).scaled(0.75))
    )
    want = 0.25 * booster.predict(X) + 0.75 * forest.predict(X)
    np.testing.assert_allclose(joined.predict(X), want, rtol=0, atol=1e-12)
    with pytest.raises(SNEError, match="cannot join tree ensembles on 4 and 3 features"):
        joined.join(TreeEnsemble.from_hgb(booster).on_columns(np.arange(3), 3))


def test_garbled_tree_arrays_are_refused() -> None:
    X = np.random.default_rng(0).normal(size=(100, 3))
    arrays = TreeEnsemble.from_hgb(HistGradientBoostingRegressor(max_iter=5).fit(X, X[:, 0]))
    arrays = arrays.to_arrays()
    with pytest.raises(SNEError, match="points outside its nodes"):
        TreeEnsemble.from_arrays({**arrays, "left": arrays["left"] + 10_000})
    with pytest.raises(SNEError, match="lacks or garbles"):
        TreeEnsemble.from_arrays({k: v for k, v in arrays.items() if k != "value"})
    with pytest.raises(SNEError, match=r"expected features of shape \(n, 3\)"):
        TreeEnsemble.from_arrays(arrays).predict(np.zeros((2, 4)))


@pytest.fixture(scope="module")
def boosted() -> tuple[SNERegressor, list, np.ndarray]:
    nets, y = scaled_cnn_zoo(80, seed=5)
    reg = SNERegressor(width=8, heads=1, epochs=2, stats_boost=True, random_state=0, verbose=False)
    return reg.fit(nets[:60], y[:60]), nets, y


def test_prediction_is_the_mean_of_the_network_and_both_tree_ensembles(boosted: tuple) -> None:
    reg, nets, _ = boosted
    assert isinstance(reg.trees_, TreeEnsemble)
    assert reg.trees_weight_ == pytest.approx(2 / 3)
    data = reg._data(nets[60:], None)
    both = reg.predict(nets[60:])
    trees = reg.trees_.predict(reg._tree_features(data))  # (boosted + forest) / 2
    saved, reg.trees_ = reg.trees_, None
    network = reg.predict(nets[60:])
    reg.trees_ = saved
    np.testing.assert_allclose(both, network / 3 + 2 * trees / 3, rtol=1e-6)
    assert not np.allclose(both, network)


def test_a_regressor_saved_before_the_forest_keeps_its_half_and_half_mean(boosted: tuple) -> None:
    """Saves and pickles of the earlier version have no ``trees_weight_``: their ``trees_``
    are the boosted trees alone, averaged half and half with the network."""
    reg, nets, _ = boosted
    data = reg._data(nets[60:], None)
    trees = reg.trees_.predict(reg._tree_features(data))
    saved_trees, saved_weight = reg.trees_, reg.trees_weight_
    del reg.trees_weight_
    try:
        older = reg.predict(nets[60:])
        reg.trees_ = None
        network = reg.predict(nets[60:])
    finally:
        reg.trees_, reg.trees_weight_ = saved_trees, saved_weight
    np.testing.assert_allclose(older, (network + trees) / 2, rtol=1e-6)


def test_saved_and_loaded_with_its_trees(boosted: tuple, tmp_path) -> None:
    reg, nets, _ = boosted
    reg.save(tmp_path / "boosted.sne")
    back = SNERegressor.load(tmp_path / "boosted.sne")
    np.testing.assert_allclose(back.predict(nets[60:]), reg.predict(nets[60:]), rtol=1e-6)
    with pytest.raises(SNEError, match="stats_boost=True"):
        back.predict_embedded(back.transform(nets[:2]))


def test_no_trees_with_a_ranking_loss_or_too_few_networks() -> None:
    nets, y = scaled_cnn_zoo(40, seed=6)
    small = dict(width=8, heads=1, epochs=1, stats_boost=True, random_state=0, verbose=False)
    assert SNERegressor(**small).fit(nets[:30], y[:30]).trees_ is None  # fewer than 40
    assert SNERegressor(loss="pairwise", **small).fit(nets, y).trees_ is None


def test_partial_fit_keeps_the_trees_of_the_last_fit() -> None:
    nets, y = scaled_cnn_zoo(60, seed=7)
    small = dict(width=8, heads=1, epochs=1, stats_boost=True, random_state=0, verbose=False)
    online = SNERegressor(**small).partial_fit(nets, y)
    assert online.trees_ is None
    reg = SNERegressor(**small).fit(nets, y)
    trees = reg.trees_
    assert trees is not None
    assert reg.partial_fit(nets[:10], y[:10]).trees_ is trees


def test_columns_unknown_in_every_training_network_are_left_out() -> None:
    """Networks without biases have NaN bias statistics: the trees split on the other columns
    and still read the full feature vector at prediction."""
    from sne_plugin import NetworkWeights

    g = np.random.default_rng(0)
    scales = g.uniform(0.1, 1.0, 50)
    nets = [
        NetworkWeights.from_pairs(
            [(g.normal(size=(6, 4)) * s, None), (g.normal(size=(2, 6)), None)]
        )
        for s in scales
    ]
    small = dict(width=8, heads=1, epochs=1, stats_boost=True, random_state=0, verbose=False)
    reg = SNERegressor(**small).fit(nets, scales)
    assert reg.trees_ is not None
    assert reg.trees_.n_features == reg._tree_features(reg._data(nets, None)).shape[1]
    assert np.isfinite(reg.predict(nets)).all()


def test_the_trees_read_the_summary_then_the_singular_values(boosted: tuple) -> None:
    from sne_plugin.encoder.stats import (
        SPECTRAL_FEATURES,
        SUMMARY_FEATURES,
        network_summaries,
        spectral_summaries,
    )

    reg, nets, _ = boosted
    assert reg.tree_inputs_ == "summary+spectral"
    features = reg._tree_features(reg._data(nets[60:], None))
    assert features.shape == (20, len(SUMMARY_FEATURES) + len(SPECTRAL_FEATURES))
    specs, flats = [n.spec for n in nets[60:]], [n.flatten() for n in nets[60:]]
    want = np.c_[network_summaries(specs, flats), spectral_summaries(specs, flats)]
    np.testing.assert_allclose(features, want.astype(np.float32), rtol=1e-6, equal_nan=True)


def test_a_regressor_saved_before_the_singular_values_reads_the_summary_alone(
    boosted: tuple, tmp_path
) -> None:
    """Saves made before the spectral summary have no ``tree_inputs_``: their trees read the
    70-number summary alone, and a name this version does not know is refused."""
    from sne_plugin.encoder.stats import SUMMARY_FEATURES
    from sne_plugin.regressor import check_targets

    reg, nets, y = boosted
    reg.save(tmp_path / "new.sne")
    older = SNERegressor.load(tmp_path / "new.sne")
    older.tree_inputs_ = "summary"  # trees fitted as the earlier version did, then saved
    target = check_targets(y[:60], 60, loss=older.loss_)
    older.trees_ = older._fit_trees(older._data(nets[:60], None), target)
    older.save(tmp_path / "older.sne")
    older = SNERegressor.load(tmp_path / "older.sne")
    del older.tree_inputs_
    assert older._tree_features(older._data(nets[:3], None)).shape == (3, len(SUMMARY_FEATURES))
    assert older.trees_.n_features == len(SUMMARY_FEATURES)
    assert np.isfinite(older.predict(nets[60:])).all()
    older.tree_inputs_ = "summary+curvature"
    with pytest.raises(SNEError, match="expected tree_inputs_ 'summary' or 'summary\\+spectral'"):
        older.predict(nets[:2])
