"""sne-plugin: predict a trained network's generalization from its weights alone.

>>> import sne_plugin
>>> sorted(sne_plugin.__all__)[:3]
['Layer', 'LayerKind', 'NetworkWeights']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sne_plugin.errors import SNEError
from sne_plugin.weights import Layer, LayerKind, NetworkWeights

__version__ = "0.1.0"

__all__ = [
    "Layer",
    "LayerKind",
    "NetworkWeights",
    "SNEError",
    "SNERegressor",
    "__version__",
    "read_weights",
]

if TYPE_CHECKING:
    from sne_plugin.readers import read_weights
    from sne_plugin.regressor import SNERegressor

_LAZY = {"read_weights": "sne_plugin.readers", "SNERegressor": "sne_plugin.regressor"}


def __getattr__(name: str) -> Any:
    # Lazy, so that `import sne_plugin` stays light; optuna and onnx are never imported here.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sne_plugin' has no attribute {name!r}")
