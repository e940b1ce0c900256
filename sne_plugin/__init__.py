"""sne-plugin: predict a trained network's generalization from its weights alone.

>>> import sne_plugin
>>> sorted(sne_plugin.__all__)[:3]
['Layer', 'LayerKind', 'NetworkWeights']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sne_plugin.errors import SNEError

__version__ = "0.1.0"

__all__ = [
    "Layer",
    "LayerKind",
    "NetworkWeights",
    "SNEEmbedder",
    "SNEError",
    "SNERegressor",
    "__version__",
    "read_weights",
]

if TYPE_CHECKING:
    from sne_plugin.embedder import SNEEmbedder
    from sne_plugin.readers import read_weights
    from sne_plugin.regressor import SNERegressor
    from sne_plugin.weights import Layer, LayerKind, NetworkWeights

# Everything that needs torch is imported on first use, so that `import sne_plugin` (and with
# it `sne --help`) stays light.
_LAZY = {
    "Layer": "sne_plugin.weights",
    "LayerKind": "sne_plugin.weights",
    "NetworkWeights": "sne_plugin.weights",
    "read_weights": "sne_plugin.readers",
    "SNERegressor": "sne_plugin.regressor",
    "SNEEmbedder": "sne_plugin.embedder",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sne_plugin' has no attribute {name!r}")
