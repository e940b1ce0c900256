"""DeepSets: padding is masked, elements are a set, the element features are as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sne_plugin import LayerKind, NetworkWeights
from sne_plugin.research.baselines._deepsets import element_table


@pytest.fixture(scope="module")
def model(fast, zoo_mixed):
    nets, y = zoo_mixed
    return fast["deepsets"]().set_params(epochs=3).fit(nets[:40], y[:40])


def test_prediction_does_not_depend_on_batch_mates(model, zoo_mixed):
    nets = zoo_mixed[0][40:60]  # four architectures, so every batch is padded
    alone = np.array([model.predict([net])[0] for net in nets])
    np.testing.assert_allclose(model.predict(nets), alone, rtol=1e-5, atol=1e-6)


def test_permuting_values_within_a_tensor_leaves_prediction_unchanged(model, zoo_mixed):
    net = zoo_mixed[0][0]
    first = net.layers[0]
    perm = torch.randperm(first.weight.numel(), generator=torch.Generator().manual_seed(0))
    shuffled = first.weight.reshape(-1)[perm].reshape(first.weight.shape)
    other = net.with_layers([first.replace(shuffled, first.bias), *net.layers[1:]])
    np.testing.assert_allclose(model.predict([other]), model.predict([net]), rtol=1e-5)


def test_element_table_rows_per_tensor():
    net = NetworkWeights.from_pairs(
        [
            (torch.zeros(4, 2, 3, 3), torch.zeros(4)),
            (torch.zeros(5, 4), None),
            (torch.zeros(2, 5), None),
        ]
    )
    table = element_table(net)
    kinds = list(LayerKind)
    assert table.shape == (4, len(kinds) + 2)
    assert table[0, kinds.index(LayerKind.CONV2D)] == 1
    assert table[2, kinds.index(LayerKind.DENSE)] == 1
    np.testing.assert_allclose(table[:, -2], [0, 0, 0.5, 1])  # depth
    np.testing.assert_allclose(table[:, -1], [0, 1, 0, 0])  # is_bias
