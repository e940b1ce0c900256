"""The cost script's noisy copies of a zoo's networks (its curve beyond the zoo's size)."""

from __future__ import annotations

import numpy as np
import torch

from sne_plugin import NetworkWeights
from sne_plugin.research.bench.cost import _noisy


def test_noisy_copies_keep_the_shapes_and_move_the_weights_a_little() -> None:
    g = torch.Generator().manual_seed(0)
    net = NetworkWeights.from_pairs([(torch.randn(8, 4, generator=g), torch.randn(8, generator=g))])
    copy = _noisy(net, np.random.default_rng(0))
    assert copy.spec == net.spec
    diff = (copy.layers[0].weight - net.layers[0].weight).abs()
    assert 0 < float(diff.max()) < 0.1 * float(net.layers[0].weight.std())
