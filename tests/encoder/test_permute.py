"""Hidden-unit permutations preserve the network's function; the regulariser uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sne_plugin.encoder.permute import boundaries, permute_network
from sne_plugin.weights import NetworkWeights


def _as_weights(model: nn.Module) -> NetworkWeights:
    pairs = [
        (m.weight, m.bias)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d))
    ]
    return NetworkWeights.from_pairs(pairs)


def _load(model: nn.Module, net: NetworkWeights, perms: list[np.ndarray]) -> nn.Module:
    """Write permuted weights back; running statistics follow their norm layer's units."""
    layers = [
        m
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d))
    ]
    by_units = {len(p): p for p in perms}
    with torch.no_grad():
        for module, layer in zip(layers, net.layers):
            module.weight.copy_(layer.weight)
            if layer.bias is not None:
                module.bias.copy_(layer.bias)
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                perm = torch.from_numpy(by_units[module.num_features])
                module.running_mean.copy_(module.running_mean[perm])
                module.running_var.copy_(module.running_var[perm])
    return model


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 9), nn.Tanh(), nn.Linear(9, 3))


def _cnn_gap() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 5, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 4),
    )


def _cnn_flatten() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 3),
        nn.ReLU(),
        nn.Conv2d(6, 7, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(7 * 2 * 2, 10),
        nn.BatchNorm1d(10),
        nn.ReLU(),
        nn.Linear(10, 3),
    )


@pytest.mark.parametrize(
    ("factory", "shape", "n_boundaries"),
    [
        (_mlp, (5, 6), 2),
        (_cnn_gap, (5, 1, 8, 8), 2),
        (_cnn_flatten, (5, 1, 8, 8), 3),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permutation_preserves_function(factory, shape, n_boundaries, seed) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = factory()
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.randn(*shape)
    before = model(x)
    net = _as_weights(model)
    assert len(boundaries(net.spec)) == n_boundaries
    permuted, perms = permute_network(net, np.random.default_rng(seed))
    assert not np.allclose(permuted.flatten(), net.flatten())  # something moved
    after = _load(model, permuted, perms)(x)
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)


def test_non_chain_networks_are_left_alone() -> None:
    net = NetworkWeights(_as_weights(_mlp()).layers, is_chain=False)
    permuted, perms = permute_network(net, np.random.default_rng(0))
    assert permuted is net and perms == []


def test_grouped_convolution_outputs_are_not_permuted() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8), nn.ReLU(), nn.Conv2d(8, 4, 1)
    )
    net = _as_weights(model)
    # the first conv feeds a depthwise conv (fan-in 1 != 8): no boundary there; the depthwise
    # conv itself is grouped: no boundary after it either.
    assert boundaries(net.spec) == ()
