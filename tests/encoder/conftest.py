"""Small synthetic zoos whose target is a known function of the weights."""

from __future__ import annotations

import numpy as np
import pytest

from sne_plugin import NetworkWeights
from sne_plugin.testing import scaled_cnn_zoo


@pytest.fixture(scope="session")
def zoo() -> tuple[list[NetworkWeights], np.ndarray]:
    return scaled_cnn_zoo(160)
