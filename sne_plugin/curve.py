"""Scale-free learning-curve features: how a trial's curve ranks among its peers' curves.

The pretrained predictor (:mod:`sne_plugin.pretrained`) sees, beside a network's weights at a
step, where the network's validation curve stands among the other trials of the same search
at that step. Only ranks enter, never the values themselves, so one model serves searches
whose metric is an accuracy, an error or a loss, on any scale: the caller flips the sign of
values that are better when lower.

Columns (:data:`CURVE_FEATURES`), each in (0, 1) or NaN where unknown:

* ``rank_now``: percentile rank of the value at this step;
* ``rank_prev``: percentile rank of the value at the previous reported step (NaN at the first);
* ``rank_best``: percentile rank of the best value so far;
* ``rank_delta``: percentile rank of the change since the previous step;
* ``progress``: this step over the planned last step (NaN when the plan is unknown).

A percentile rank here is ``(rank - 0.5) / n`` among the ``n`` rows with a value (ties share
their mean rank), so a lone trial sits at 0.5.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from sne_plugin.errors import SNEError

__all__ = ["CURVE_FEATURES", "curve_features", "percentile_ranks"]

CURVE_FEATURES = ("rank_now", "rank_prev", "rank_best", "rank_delta", "progress")


def percentile_ranks(values: np.ndarray) -> np.ndarray:
    """``(rank - 0.5) / n`` of each finite value among the finite ones; NaN stays NaN.

    >>> percentile_ranks(np.array([0.3, np.nan, 0.9, 0.1])).round(3).tolist()
    [0.5, nan, 0.833, 0.167]
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    ok = np.isfinite(values)
    if ok.any():
        out[ok] = (rankdata(values[ok]) - 0.5) / ok.sum()
    return out


def curve_features(
    now: np.ndarray,
    prev: np.ndarray,
    best: np.ndarray,
    progress: np.ndarray | float = np.nan,
) -> np.ndarray:
    """The ``(n, 5)`` features of :data:`CURVE_FEATURES` for ``n`` peers at one step.

    ``now``, ``prev`` and ``best`` are each peer's value at this step, at its previous
    reported step (NaN if none) and its best so far, all oriented so that higher is better;
    ``progress`` is one number or one per peer.

    >>> f = curve_features(np.array([0.2, 0.6]), np.array([0.1, 0.7]), np.array([0.2, 0.7]), 0.5)
    >>> f.round(2).tolist()
    [[0.25, 0.25, 0.25, 0.75, 0.5], [0.75, 0.75, 0.75, 0.25, 0.5]]
    """
    now, prev, best = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (now, prev, best))
    if not len(now) == len(prev) == len(best):
        raise SNEError(
            f"expected now, prev and best of one length, got {len(now)}, {len(prev)}, {len(best)}"
        )
    prog = np.broadcast_to(np.asarray(progress, dtype=np.float64), now.shape)
    with np.errstate(invalid="ignore"):
        delta = now - prev
    return np.column_stack(
        [
            percentile_ranks(now),
            percentile_ranks(prev),
            percentile_ranks(best),
            percentile_ranks(delta),
            np.clip(prog, 0.0, 1.0),
        ]
    )
