"""Side inputs: what a search already knows about each network, beside its weights.

The validation curve so far, the training progress (step, planned steps) and numeric
hyperparameters enter :class:`~sne_plugin.SNERegressor`'s head next to the network
embedding. They arrive as a 2-D float array ``(n_networks, k)`` or as a mapping of named
columns (``{"val_acc": [...], "step": [...]}``), one value per network; NaN means unknown
(it becomes the training mean). They are standardised with the training statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sne_plugin.errors import SNEError, describe

__all__ = ["SideScaler", "read_side"]


def read_side(side: object, n: int) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """``side`` as a float64 ``(n, k)`` array, and its column names when it was a mapping.

    >>> read_side({"acc": [0.1, 0.5], "step": [1, 1]}, 2)[0].tolist()
    [[0.1, 1.0], [0.5, 1.0]]
    """
    names = tuple(str(key) for key in side) if isinstance(side, Mapping) else None
    columns = [side[key] for key in side] if isinstance(side, Mapping) else None
    try:
        values = np.column_stack(columns) if columns else np.asarray(side, dtype=np.float64)
        values = values.astype(np.float64)
    except (TypeError, ValueError):
        raise SNEError(f"expected numeric side inputs, got {describe(side)}") from None
    if values.ndim == 1 and n == len(values) and columns is None:
        raise SNEError(
            f"expected side inputs of shape (n_networks, k), got a 1-D array of shape "
            f"{values.shape}; use side.reshape(-1, 1) for one value per network"
        )
    if values.ndim != 2 or len(values) != n:
        raise SNEError(
            f"expected side inputs of shape ({n}, k), one row per network, got shape {values.shape}"
        )
    if np.isinf(values).any():
        raise SNEError("side inputs must be finite or NaN (unknown), got inf")
    return values, names


@dataclass(frozen=True)
class SideScaler:
    """Training statistics of the side inputs: standardise, and NaN -> 0 (the mean)."""

    mean: np.ndarray
    scale: np.ndarray
    names: tuple[str, ...] | None

    @classmethod
    def fit(cls, side: object, n: int) -> SideScaler:
        values, names = read_side(side, n)
        with np.errstate(all="ignore"):
            mean = np.nan_to_num(np.nanmean(values, axis=0))
            scale = np.nan_to_num(np.nanstd(values, axis=0))
        return cls(mean, np.where(scale > 0, scale, 1.0), names)

    @property
    def width(self) -> int:
        return len(self.mean)

    def transform(self, side: object, n: int) -> np.ndarray:
        """``side`` standardised, float32 ``(n, width)``; checked against the fit's columns."""
        values, names = read_side(side, n)
        if values.shape[1] != self.width:
            raise SNEError(
                f"expected {self.width} side input(s) per network, as in fit, got {values.shape[1]}"
            )
        if self.names is not None and names is not None and names != self.names:
            raise SNEError(f"expected side inputs named {list(self.names)}, got {list(names)}")
        return np.nan_to_num((values - self.mean) / self.scale).astype(np.float32)
