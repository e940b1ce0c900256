"""Optional dependencies, imported on first use with a message that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_import"]

_EXTRA = {
    "optuna": "optuna",
    "onnx": "onnx",
    "matplotlib": "plot",
    "nfn": "bench",
    "onnxscript": "onnx",
}


def optional_import(module: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the pip extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA.get(top, top)
        raise ImportError(
            f"sne-plugin needs the optional package {top!r} for this; "
            f"install it with: pip install 'sne-plugin[{extra}]'"
        ) from exc
