"""Bad input raises SNEError saying what was expected, what arrived and where."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sne_plugin import NetworkWeights, SNEError
from sne_plugin.research.baselines import FlatMLPRegressor

NAMES = ["statnn", "flat_mlp", "deepsets"]


@pytest.fixture
def tiny(zoo_one):
    nets, y = zoo_one
    return list(nets[:12]), y[:12].copy()


def _with_nan(net: NetworkWeights) -> NetworkWeights:
    weight = net.layers[0].weight.clone()
    weight[0, 0] = float("nan")
    return net.with_layers([net.layers[0].replace(weight, net.layers[0].bias), *net.layers[1:]])


@pytest.mark.parametrize("name", NAMES)
def test_nan_weight_names_the_network_in_fit(name, fast, tiny):
    nets, y = tiny
    nets[3] = _with_nan(nets[3])
    message = r"X\[3\] \(zoo\[3\]\): weights contain NaN or inf \(first in layer '"
    with pytest.raises(SNEError, match=message):
        fast[name]().fit(nets, y)


@pytest.mark.parametrize("name", NAMES)
def test_nan_weight_names_the_network_in_predict(name, fast, tiny):
    nets, y = tiny
    model = fast[name]().fit(nets, y)
    message = r"X\[1\] \(zoo\[0\]\): weights contain NaN or inf \(first in layer '"
    with pytest.raises(SNEError, match=message):
        model.predict([nets[1], _with_nan(nets[0])])


@pytest.mark.parametrize("name", NAMES)
def test_nan_target(name, fast, tiny):
    nets, y = tiny
    y = y.copy()
    y[5] = np.nan
    with pytest.raises(SNEError, match=r"y has 1 NaN/inf targets \(first at index 5\)"):
        fast[name]().fit(nets, y)


@pytest.mark.parametrize("name", NAMES)
def test_length_mismatch(name, fast, tiny):
    nets, y = tiny
    with pytest.raises(SNEError, match="X has 12 networks but y has 11 targets"):
        fast[name]().fit(nets, y[:11])


@pytest.mark.parametrize("name", ["flat_mlp", "deepsets"])
def test_bce_needs_targets_in_unit_interval(name, fast, tiny):
    nets, y = tiny
    with pytest.raises(SNEError, match=r"loss='bce' needs targets in \[0, 1\].*use loss='mse'"):
        fast[name]().set_params(loss="bce").fit(nets, y * 3)


@pytest.mark.parametrize("name", ["flat_mlp", "deepsets"])
def test_auto_loss_picks_mse_outside_unit_interval(name, fast, tiny):
    nets, y = tiny
    model = fast[name]().set_params(epochs=2).fit(nets, y * 10 - 5)
    assert model.loss_ == "mse"
    assert fast[name]().set_params(epochs=2).fit(nets, y).loss_ == "bce"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"loss": "huber"},
            r"expected loss to be one of \('auto', 'bce', 'mse'\), but got loss='huber'",
        ),
        ({"epochs": 0}, r"expected epochs to be an int >= 1, but got epochs=0"),
        ({"validation_fraction": 1.0}, r"expected 0 <= validation_fraction < 1"),
        ({"lr": -1.0}, r"expected lr > 0, but got lr=-1.0"),
    ],
)
def test_bad_parameters(params, message, fast, tiny):
    with pytest.raises(SNEError, match=message):
        fast["deepsets"]().set_params(**params).fit(*tiny)


@pytest.mark.parametrize("name", NAMES)
def test_x_must_be_a_list(name, fast, tiny):
    nets, y = tiny
    with pytest.raises(SNEError, match=r"expected a list of networks .* wrap a single network"):
        fast[name]().fit(nets[0], y[:1])


def test_flat_mlp_rejects_another_architecture_in_fit(tiny):
    nets, y = tiny
    pairs = [(torch.zeros(8, 5), torch.zeros(8)), (torch.zeros(3, 8), None)]
    other = NetworkWeights.from_pairs(pairs)
    with pytest.raises(
        SNEError,
        match=r"X\[4\] \(<pairs>\): FlatMLPRegressor needs one architecture; "
        r"expected shapes \[\(8, 4\)\+\(8,\), \(3, 8\)\+\(3,\)\], "
        r"got \[\(8, 5\)\+\(8,\), \(3, 8\)\]",
    ):
        FlatMLPRegressor(epochs=1).fit([*nets[:4], other, *nets[5:]], y)


def test_flat_mlp_rejects_another_architecture_in_predict(fast, tiny):
    model = fast["flat_mlp"]().set_params(epochs=1).fit(*tiny)
    other = NetworkWeights.from_pairs([(torch.zeros(8, 4), None), (torch.zeros(3, 8), None)])
    with pytest.raises(SNEError, match=r"X\[1\] .*got \[\(8, 4\), \(3, 8\)\]"):
        model.predict([tiny[0][0], other])


def test_flat_mlp_accepts_other_layer_names(fast, tiny):
    nets, y = tiny
    model = fast["flat_mlp"]().set_params(epochs=1).fit(nets, y)
    renamed = NetworkWeights.from_pairs(
        [(layer.weight, layer.bias) for layer in nets[0]], names=["fc1", "fc2"]
    )
    assert model.predict([renamed]) == pytest.approx(model.predict(nets[:1]))
