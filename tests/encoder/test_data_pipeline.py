"""The regressor's compact data: one float32 buffer, minibatches gathered from it."""

from __future__ import annotations

import numpy as np
import torch

from sne_plugin import NetworkWeights, SNERegressor
from sne_plugin.encoder.permute import random_flat_index
from sne_plugin.regressor import _as_data, _ranges


def _mixed_nets() -> list[NetworkWeights]:
    g = torch.Generator().manual_seed(0)
    small = [
        (torch.randn(4, 3, generator=g), torch.randn(4, generator=g)),
        (torch.randn(2, 4, generator=g), None),
    ]
    conv = [(torch.randn(3, 1, 3, 3, generator=g), torch.randn(3, generator=g))]
    return [NetworkWeights.from_pairs(small if i % 2 else conv) for i in range(5)]


def test_subsets_hold_each_networks_own_vector() -> None:
    nets = _mixed_nets()
    data = _as_data(nets)
    assert data.flat.dtype == torch.float32 and data.flat.numel() == sum(n.num_params for n in nets)
    assert data.specs[1] is data.specs[3]  # equal shapes share one spec
    for idx in ([3, 0, 4], [1, 2], [4], [2, 2, 0]):
        sub = data.subset(idx)
        expected = np.concatenate([nets[i].flatten() for i in idx])
        assert np.array_equal(sub.flat.numpy(), expected)
        for j, i in enumerate(idx):
            assert np.array_equal(sub.net(j).numpy(), nets[i].flatten())
    view = data.subset([1, 2, 3])
    assert view.flat.data_ptr() == data.net(1).data_ptr()  # consecutive: no copy


def test_ranges_skip_empty_ones() -> None:
    starts, sizes = np.array([5, 0, 9, 2]), np.array([2, 0, 3, 1])
    assert _ranges(starts, sizes).tolist() == [5, 6, 9, 10, 11, 2]


def test_permuted_copies_are_the_networks_permuted() -> None:
    nets = _mixed_nets()
    reg = SNERegressor(width=8, epochs=1, random_state=0).fit(nets, np.linspace(0.2, 0.8, 5))
    sub = _as_data(nets).subset([0, 1, 2, 3])
    reg._rng = np.random.RandomState(7)
    keep, twin = reg._permuted(sub)
    assert twin is not None and keep == [0]  # a quarter of four networks
    rng = np.random.RandomState(7)
    index, _ = random_flat_index(sub.specs[0], rng)
    assert np.array_equal(twin.net(0).numpy(), nets[0].flatten()[index])
