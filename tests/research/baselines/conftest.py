"""A tiny synthetic zoo whose target is a known function of the weights, and fast settings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from sne_plugin import NetworkWeights
from sne_plugin.research.baselines import DeepSetsRegressor, FlatMLPRegressor, StatNNRegressor
from sne_plugin.testing import mean_shift_mlp_zoo

ONE_SHAPE = [(4, 8)]
MIXED_SHAPES = [(4, 8), (6, 8), (4, 12), (6, 12)]


def make_zoo(
    n: int, shapes: list[tuple[int, int]], seed: int
) -> tuple[list[NetworkWeights], np.ndarray]:
    """Random 2-layer MLPs; target = sigmoid(4 * mean of the first layer's weight)."""
    return mean_shift_mlp_zoo(n, shapes, seed)


FAST: dict[str, Any] = {
    "statnn": lambda: StatNNRegressor(n_estimators=60, min_samples_leaf=5, random_state=0),
    "flat_mlp": lambda: FlatMLPRegressor(
        hidden=(32,), epochs=40, lr=3e-3, random_state=0, device="cpu"
    ),
    "deepsets": lambda: DeepSetsRegressor(
        width=16, epochs=25, lr=5e-3, random_state=0, device="cpu"
    ),
}


@pytest.fixture(scope="session")
def fast() -> dict[str, Any]:
    """Factories of small, seeded, quick-to-train baselines, by name."""
    return FAST


@pytest.fixture(scope="session")
def zoo_one() -> tuple[list[NetworkWeights], np.ndarray]:
    return make_zoo(160, ONE_SHAPE, seed=1)


@pytest.fixture(scope="session")
def zoo_mixed() -> tuple[list[NetworkWeights], np.ndarray]:
    return make_zoo(160, MIXED_SHAPES, seed=2)


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Any:
    """One torch/OpenMP thread: on a shared 2-core host two threads run 10-30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
