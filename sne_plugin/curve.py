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

from typing import Any

import numpy as np
from scipy.stats import rankdata

from sne_plugin.errors import SNEError

__all__ = ["CURVE_FEATURES", "CurveModel", "curve_features", "percentile_ranks"]

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


_MISSING = (1, 3, 4)  # rank_prev, rank_delta, progress: NaN where unknown


def _basis(side: np.ndarray, degree: int) -> np.ndarray:
    """Monomials up to ``degree`` of the features (NaN filled with 0.5), times 1 and times an
    indicator of each feature that can be missing, so a missing value has its own terms."""
    from itertools import combinations_with_replacement

    side = np.asarray(side, dtype=np.float64)
    x = np.nan_to_num(side, nan=0.5)
    cols = [np.ones(len(x))]
    for d in range(1, degree + 1):
        for combo in combinations_with_replacement(range(x.shape[1]), d):
            cols.append(np.prod(x[:, list(combo)], axis=1))
    known = [np.isfinite(side[:, j]).astype(np.float64) for j in _MISSING]
    base = np.column_stack(cols)
    lin = np.column_stack([np.ones(len(x)), x])
    return np.column_stack([base, *[k[:, None] * lin for k in known]])


class CurveModel:
    """A learning-curve model on the :data:`CURVE_FEATURES`: predicted final percentile rank.

    Ridge regression on monomials of the features up to ``degree`` (plus terms for each
    feature that can be missing), so it is a few hundred numbers, stored as JSON: no
    weights, no architecture, no metric scale enter, only where a curve stands among its
    peers' and how it moves. Fitted by :mod:`sne_plugin.research.pretrain` on the meta-zoo.

    >>> rng = np.random.default_rng(0)
    >>> side = rng.random((200, 5))
    >>> m = CurveModel(degree=2).fit(side, side[:, 0])
    >>> float(np.abs(m.predict(side) - side[:, 0]).max()) < 0.02
    True
    """

    def __init__(self, degree: int = 3, alpha: float = 1e-3) -> None:
        self.degree = degree
        self.alpha = alpha
        self.coef_: np.ndarray | None = None

    def fit(self, side: np.ndarray, target: np.ndarray) -> CurveModel:
        side = np.asarray(side, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64).reshape(-1)
        if side.ndim != 2 or side.shape[1] != len(CURVE_FEATURES) or len(side) != len(target):
            raise SNEError(
                f"expected side of shape (n, {len(CURVE_FEATURES)}) and n targets, got "
                f"{side.shape} and {target.shape}"
            )
        ok = np.isfinite(target) & np.isfinite(side[:, 0])
        A = _basis(side[ok], self.degree)
        gram = A.T @ A + self.alpha * len(A) * np.eye(A.shape[1])
        self.coef_ = np.linalg.solve(gram, A.T @ target[ok])
        return self

    def predict(self, side: np.ndarray) -> np.ndarray:
        if self.coef_ is None:
            raise SNEError("this CurveModel is not fitted yet: call fit(side, target) first")
        side = np.asarray(side, dtype=np.float64)
        if side.ndim != 2 or side.shape[1] != len(CURVE_FEATURES):
            raise SNEError(f"expected side of shape (n, {len(CURVE_FEATURES)}), got {side.shape}")
        out = _basis(side, self.degree) @ self.coef_
        # a row with no value now has no rank: it sits in the middle, as rank_now does
        return np.where(np.isfinite(side[:, 0]), out, 0.5)

    def to_dict(self) -> dict[str, object]:
        if self.coef_ is None:
            raise SNEError("this CurveModel is not fitted yet: nothing to save")
        return {"degree": self.degree, "alpha": self.alpha, "coef": self.coef_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "curve model") -> CurveModel:
        try:
            m = cls(int(d["degree"]), float(d["alpha"]))
            coef = np.asarray(d["coef"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise SNEError(f"{where}: expected degree, alpha and coef, got {exc!r}") from None
        n = _basis(np.zeros((1, len(CURVE_FEATURES))), m.degree).shape[1]
        if coef.shape != (n,) or not np.isfinite(coef).all():
            raise SNEError(f"{where}: expected {n} finite coefficients, got shape {coef.shape}")
        m.coef_ = coef
        return m
