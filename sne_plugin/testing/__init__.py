"""Test doubles for code built on sne-plugin (the project's own tests use them too).

- Synthetic zoos with a known answer: each returns ``(networks, targets)``, a list of
  :class:`~sne_plugin.NetworkWeights` and a float array in [0, 1] that is a known function of
  the weights, so that any regressor worth its name ranks held-out networks well.
- :func:`tiny_regressor`: the real :class:`~sne_plugin.SNERegressor` at test sizes.
- :class:`FirstWeightPredictor`: a deterministic stand-in for a fitted regressor.
- :mod:`sne_plugin.testing.optuna`: trials driven through the real Optuna API, and one
  worker process of a distributed study.

>>> nets, y = scaled_cnn_zoo(8)
>>> len(nets), float(y.min()) >= 0.1, nets[0].spec.layers[0].weight_shape
(8, True, (8, 1, 3, 3))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from sne_plugin.weights import NetworkWeights

if TYPE_CHECKING:
    from sne_plugin.regressor import SNERegressor

__all__ = ["FirstWeightPredictor", "mean_shift_mlp_zoo", "scaled_cnn_zoo", "tiny_regressor"]


def scaled_cnn_zoo(n: int, seed: int = 0) -> tuple[list[NetworkWeights], np.ndarray]:
    """Small CNNs whose target grows with the scale of their first two layers' weights."""
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


def mean_shift_mlp_zoo(
    n: int, shapes: Sequence[tuple[int, int]] = ((4, 8),), seed: int = 0
) -> tuple[list[NetworkWeights], np.ndarray]:
    """Two-layer MLPs of the given (inputs, hidden) shapes, cycled; the target is
    ``sigmoid(4 * mean of the first layer's weight)``."""
    g = torch.Generator().manual_seed(seed)
    nets, y = [], []
    for i in range(n):
        n_in, hidden = shapes[i % len(shapes)]
        shift = float(torch.rand((), generator=g)) - 0.5
        w1 = torch.randn(hidden, n_in, generator=g) * 0.5 + shift
        pairs = [
            (w1, torch.randn(hidden, generator=g) * 0.1),
            (torch.randn(3, hidden, generator=g) * 0.5, torch.randn(3, generator=g) * 0.1),
        ]
        nets.append(NetworkWeights.from_pairs(pairs, source=f"zoo[{i}]"))
        y.append(float(torch.sigmoid(4 * w1.mean())))
    return nets, np.asarray(y)


def tiny_regressor() -> SNERegressor:
    """SNEPruner's online regressor (:func:`~sne_plugin.integrations.optuna.default_regressor`)
    at test sizes: chunks of 16, 10 epochs, on the CPU. Needs the ``optuna`` extra.

    >>> tiny_regressor().get_params()["epochs"]
    10
    """
    from sne_plugin.integrations.optuna import default_regressor

    regressor: SNERegressor = default_regressor().set_params(chunk_size=16, epochs=10, device="cpu")
    return regressor


class FirstWeightPredictor:
    """A fitted-regressor stand-in that predicts each network's first weight (deterministic);
    ``seen`` counts the networks it was asked about.

    >>> import torch
    >>> net = NetworkWeights.from_pairs([(torch.full((2, 2), 0.25), None)])
    >>> p = FirstWeightPredictor()
    >>> p.predict([net, net]).tolist(), p.seen
    ([0.25, 0.25], 2)
    """

    def __init__(self) -> None:
        self.seen = 0

    def predict(self, nets: list[NetworkWeights]) -> np.ndarray:
        self.seen += len(nets)
        return np.asarray([float(n.layers[0].weight.reshape(-1)[0]) for n in nets])
