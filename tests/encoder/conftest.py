"""Small synthetic zoos whose target is a known function of the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sne_plugin import NetworkWeights


def make_zoo(n: int, seed: int = 0) -> tuple[list[NetworkWeights], np.ndarray]:
    """Small CNNs whose 'accuracy' grows with the scale of their first two layers."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.rand(n, generator=g) * 0.9 + 0.1
    nets = []
    for s in scales.tolist():
        shapes = [((8, 1, 3, 3), s), ((8, 8, 3, 3), s), ((10, 8), 0.3)]
        pairs = [
            (torch.randn(*w, generator=g) * k, torch.randn(w[0], generator=g) * 0.1)
            for w, k in shapes
        ]
        nets.append(NetworkWeights.from_pairs(pairs))
    return nets, scales.numpy().astype(np.float64) * 0.8 + 0.1


@pytest.fixture(scope="session")
def zoo() -> tuple[list[NetworkWeights], np.ndarray]:
    return make_zoo(160)
