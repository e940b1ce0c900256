"""Scores of a prediction: Kendall's tau (tau-b), tau on the trained models, R^2.

>>> round(kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]), 6)
0.666667
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import kendalltau

__all__ = ["CHANCE_CUTOFF", "kendall_tau", "r2", "scores"]

CHANCE_CUTOFF = 0.2
"""Models with true accuracy below this are near chance (ties); ``tau>=0.2`` leaves them out."""


def kendall_tau(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b of two equal-length sequences (:func:`scipy.stats.kendalltau`).

    ``nan`` when fewer than two points or one side is constant.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"expected two 1-D arrays of one length, got {a.shape} and {b.shape}")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination (1 - SSE / SST); ``nan`` for constant ``y_true``."""
    sst = float(np.sum((y_true - y_true.mean()) ** 2))
    return 1.0 - float(np.sum((y_true - y_pred) ** 2)) / sst if sst > 0 else float("nan")


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``tau``, ``tau_trained`` (true accuracy >= :data:`CHANCE_CUTOFF`), ``r2``, ``mae``."""
    keep = y_true >= CHANCE_CUTOFF
    return {
        "tau": kendall_tau(y_true, y_pred),
        "tau_trained": kendall_tau(y_true[keep], y_pred[keep]) if keep.sum() > 2 else float("nan"),
        "r2": r2(y_true, y_pred),
        "mae": float(np.mean(np.abs(y_true - y_pred))),
    }
