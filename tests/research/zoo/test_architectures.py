from __future__ import annotations

import pytest
import torch

from sne_plugin.errors import SNEError
from sne_plugin.research.zoo.architectures import ARCHITECTURES, build, to_network_weights
from sne_plugin.weights import LayerKind

BRANCHING = ("resnet_tiny", "vit_tiny")  # skip connections: no plain chain


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_every_architecture(name: str, activation: str) -> None:
    net = build(name, activation)
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    n = sum(p.numel() for p in net.parameters())
    assert 1000 <= n <= 15000
    weights = to_network_weights(net)
    assert weights.num_params == n
    assert weights.is_chain == (name not in BRANCHING)
    assert weights.layers[-1].kind is LayerKind.DENSE


def test_vit_has_attention_and_embedding() -> None:
    kinds = {layer.kind for layer in to_network_weights(build("vit_tiny"))}
    assert {LayerKind.ATTENTION, LayerKind.EMBEDDING, LayerKind.NORM} <= kinds


def test_unknown_names() -> None:
    with pytest.raises(SNEError, match="did you mean 'small_cnn'"):
        build("smal_cnn")
    with pytest.raises(SNEError, match="unknown activation 'rleu'"):
        build("mlp", "rleu")
