"""The stats branch: StatNN's statistics summarised over layers, fed beside the embedding."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from sne_plugin import NetworkWeights, SNERegressor
from sne_plugin.encoder.stats import SUMMARY_FEATURES, network_summary, tensor_statistics
from sne_plugin.research.baselines._statnn import network_statistics
from sne_plugin.testing import mean_shift_mlp_zoo

FAST = {"width": 16, "heads": 1, "chunk_size": 16, "epochs": 12, "random_state": 0}


def _net(shapes: list[tuple[int, ...]], bias: bool, seed: int = 0) -> NetworkWeights:
    g = torch.Generator().manual_seed(seed)
    pairs = [
        (torch.randn(*s, generator=g), torch.randn(s[0], generator=g) if bias else None)
        for s in shapes
    ]
    return NetworkWeights.from_pairs(pairs)


@pytest.mark.parametrize("n", [1, 2, 5, 64, 1001])
def test_tensor_statistics_match_numpy(n: int) -> None:
    x = np.random.default_rng(n).normal(size=n)
    want = np.r_[x.mean(), x.var(), np.quantile(x, [0, 0.25, 0.5, 0.75, 1])]
    np.testing.assert_allclose(tensor_statistics(x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tensor_statistics(torch.tensor(x.reshape(1, -1))), want)


def test_the_summary_reduces_statnn_statistics_over_layers() -> None:
    net = _net([(6, 1, 3, 3), (4, 6, 3, 3), (3, 4)], bias=True)
    table = network_statistics(net)  # StatNN's rows: w0, b0, w1, b1, w2, b2
    weights, biases = table[0::2].copy(), table[1::2].copy()
    weights[:, 1], biases[:, 1] = np.log10(weights[:, 1] + 1e-12), np.log10(biases[:, 1] + 1e-12)

    def reduce(t: np.ndarray) -> np.ndarray:
        return np.concatenate([t.mean(0), t.min(0), t.max(0), t[0], t[-1]])

    got = network_summary(net.spec, net.flatten())
    np.testing.assert_allclose(got, np.r_[reduce(weights), reduce(biases)], rtol=1e-5)
    named = dict(zip(SUMMARY_FEATURES, got))
    assert named["weight_last_q100"] == pytest.approx(float(net.layers[-1].weight.max()))


def test_the_summary_has_one_length_for_every_architecture() -> None:
    small = network_summary(*_flat(_net([(4, 3), (2, 4)], bias=True)))
    deep = network_summary(*_flat(_net([(8, 2, 3, 3), (8, 8, 3, 3), (8, 8, 3, 3), (5, 8)], True)))
    no_bias = network_summary(*_flat(_net([(4, 3), (2, 4)], bias=False)))
    assert small.shape == deep.shape == no_bias.shape == (len(SUMMARY_FEATURES),)
    half = len(SUMMARY_FEATURES) // 2
    assert np.isfinite(no_bias[:half]).all() and np.isnan(no_bias[half:]).all()


def _flat(net: NetworkWeights) -> tuple[object, np.ndarray]:
    return net.spec, net.flatten()


@pytest.fixture(scope="module")
def mixed_zoo():  # type: ignore[no-untyped-def]
    """MLPs of three shapes whose target is a statistic of the first layer (its mean)."""
    return mean_shift_mlp_zoo(120, shapes=((4, 8), (6, 12), (3, 16)), seed=2)


@pytest.fixture(scope="module")
def hybrid(mixed_zoo):  # type: ignore[no-untyped-def]
    nets, y = mixed_zoo
    return SNERegressor(**FAST, stats_branch=True).fit(nets[:90], y[:90])


def test_the_hybrid_learns_and_keeps_its_statistics(hybrid, mixed_zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = mixed_zoo
    assert hybrid.stats_.width == len(SUMMARY_FEATURES)
    assert hybrid.module_.n_stats == len(SUMMARY_FEATURES)
    pred = hybrid.predict(nets[90:])
    assert kendalltau(pred, y[90:]).statistic > 0.5
    again = pickle.loads(pickle.dumps(hybrid))
    np.testing.assert_allclose(again.stats_.mean, hybrid.stats_.mean)
    np.testing.assert_allclose(again.predict(nets[90:]), pred, rtol=1e-6)


def test_the_head_reads_the_branch(hybrid, mixed_zoo) -> None:  # type: ignore[no-untyped-def]
    nets, _ = mixed_zoo
    data = hybrid._data(nets[:8], None)
    with torch.no_grad():
        batch = hybrid._batch(data)
        base = hybrid.module_(*batch, None, data.stats)
        moved = hybrid.module_(*batch, None, data.stats + 1.0)
        with pytest.raises(ValueError, match=r"expected weight statistics of shape \(8, 70\)"):
            hybrid.module_(*batch, None, None)
    assert not torch.allclose(base, moved)


def test_the_hybrid_predicts_an_architecture_it_never_saw(hybrid) -> None:  # type: ignore[no-untyped-def]
    other, _ = mean_shift_mlp_zoo(6, shapes=((5, 40),), seed=3)
    pred = hybrid.predict(other)
    assert pred.shape == (6,) and np.isfinite(pred).all()
