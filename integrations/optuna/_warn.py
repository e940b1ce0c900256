"""The Optuna integration's one way to warn: a ``UserWarning`` that starts with ``SNEPruner:``."""

from __future__ import annotations

import warnings

__all__ = ["warn"]


def warn(message: str) -> None:
    """Warn ``SNEPruner: <message>``, attributed to the caller of the function that warns."""
    warnings.warn(f"SNEPruner: {message}", UserWarning, stacklevel=3)
