"""Optional dependencies, imported on first use with a message that says how to install them.

Each call site names the pip extra that brings its package
(``optional_import("onnx", extra="onnx")``); a test checks every call against pyproject.toml.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_import"]


def optional_import(module: str, *, extra: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the pip ``extra`` that brings it.

    >>> optional_import("no_such_package_here", extra="onnx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ImportError: ... install it with: pip install 'sne-plugin[onnx]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(
            f"sne-plugin needs the optional package {top!r} for this; "
            f"install it with: pip install 'sne-plugin[{extra}]'"
        ) from exc
