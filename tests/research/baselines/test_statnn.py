"""StatNN features against numpy, and the documented alignment rule across architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sne_plugin import NetworkWeights
from sne_plugin.research.baselines import StatNNRegressor
from sne_plugin.research.baselines._statnn import tensor_statistics


def _reference(values: np.ndarray) -> np.ndarray:
    quantiles = np.quantile(values, [0, 0.25, 0.5, 0.75, 1.0])
    return np.array([values.mean(), values.var(), *quantiles])


def test_tensor_statistics_match_numpy():
    tensor = torch.randn(7, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    expected = _reference(tensor.double().numpy().ravel())
    np.testing.assert_allclose(tensor_statistics(tensor), expected)


def test_features_follow_layer_order_weight_before_bias(zoo_one):
    nets, y = zoo_one
    model = StatNNRegressor(n_estimators=5).fit(nets[:30], y[:30])
    row = model.transform(nets[:1])[0].reshape(-1, 7)
    expected = [_reference(t.double().numpy().ravel()) for t in nets[0].tensors()]
    np.testing.assert_allclose(row, np.stack(expected))
    assert list(model.get_feature_names_out()[:3]) == ["t0_mean", "t0_var", "t0_q0"]


def _net(n_layers: int) -> NetworkWeights:
    g = torch.Generator().manual_seed(n_layers)
    return NetworkWeights.from_pairs([(torch.randn(4, 4, generator=g), None)] * n_layers)


def test_shorter_networks_are_padded_with_nan_and_longer_truncated():
    nets = [_net(2), _net(3)] * 10
    model = StatNNRegressor(n_estimators=5, min_samples_leaf=2).fit(nets, np.linspace(0, 1, 20))
    assert model.n_tensors_ == 3 and model.n_features_in_ == 21
    short, longer = model.transform([_net(1), _net(5)])
    assert np.isnan(short[7:]).all() and np.isfinite(short[:7]).all()
    assert np.isfinite(longer).all()
    np.testing.assert_allclose(longer, model.transform([_net(5)])[0])
    assert np.isfinite(model.predict([_net(1), _net(5)])).all()


def test_transform_before_fit_raises(zoo_one):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        StatNNRegressor().transform(zoo_one[0][:2])
