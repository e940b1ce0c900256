"""Fitted tree ensembles as plain arrays: saved without pickle, predicted with numpy.

:class:`~sklearn.ensemble.HistGradientBoostingRegressor` and
:class:`~sklearn.ensemble.ExtraTreesRegressor` fit the trees; :meth:`TreeEnsemble.from_hgb`
and :meth:`TreeEnsemble.from_forest` keep what prediction needs (per node: feature,
threshold, where a missing value goes, the two children, the leaf value), which
:mod:`sne_plugin._persist` stores in the regressor's ``.npz``. Ensembles are weighted and
joined into one (:meth:`TreeEnsemble.scaled`, :meth:`TreeEnsemble.join`): the prediction is
a baseline plus the sum of one leaf value per tree.
Prediction walks every tree for every row at once, one level per step, and equals the
estimators' own ``predict`` (numerical features; tested).

>>> import numpy as np
>>> from sklearn.ensemble import HistGradientBoostingRegressor
>>> X = np.random.default_rng(0).normal(size=(200, 3))
>>> y = X[:, 0] - 2 * X[:, 1]
>>> hgb = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(X, y)
>>> trees = TreeEnsemble.from_hgb(hgb)
>>> bool(np.allclose(trees.predict(X), hgb.predict(X)))
True
>>> bool(np.allclose(TreeEnsemble.from_arrays(trees.to_arrays()).predict(X), hgb.predict(X)))
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from sne_plugin.errors import SNEError

__all__ = ["TreeEnsemble"]

_FIELDS = ("feature", "threshold", "missing_left", "left", "right", "leaf", "value", "roots")


@dataclass(frozen=True)
class TreeEnsemble:
    """Trees of a boosted regressor: node arrays of every tree concatenated (children as
    global node indices), the root of each tree, and the baseline added to their sum."""

    feature: np.ndarray  # (nodes,) int64
    threshold: np.ndarray  # (nodes,) float64: x <= threshold goes left
    missing_left: np.ndarray  # (nodes,) bool: where NaN goes
    left: np.ndarray  # (nodes,) int64
    right: np.ndarray  # (nodes,) int64
    leaf: np.ndarray  # (nodes,) bool
    value: np.ndarray  # (nodes,) float64: a leaf's contribution
    roots: np.ndarray  # (trees,) int64
    baseline: float
    n_features: int

    @classmethod
    def from_hgb(cls, model: Any) -> TreeEnsemble:
        """The trees of a fitted single-output ``HistGradientBoostingRegressor``."""
        trees = [predictors[0] for predictors in model._predictors]
        if any(bool(t.nodes["is_categorical"].any()) for t in trees):
            raise SNEError("categorical splits are not supported in a saved tree ensemble")
        sizes = [len(t.nodes) for t in trees]
        offsets = np.cumsum([0, *sizes])[:-1].astype(np.int64)
        nodes = np.concatenate([t.nodes for t in trees]) if trees else None
        shift = np.repeat(offsets, sizes)
        if nodes is None:
            empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
            empty_b = np.zeros(0, bool)
            parts = (empty_i, empty_f, empty_b, empty_i, empty_i, empty_b, empty_f)
        else:
            parts = (
                nodes["feature_idx"].astype(np.int64),
                nodes["num_threshold"].astype(np.float64),
                nodes["missing_go_to_left"].astype(bool),
                nodes["left"].astype(np.int64) + shift,
                nodes["right"].astype(np.int64) + shift,
                nodes["is_leaf"].astype(bool),
                nodes["value"].astype(np.float64),
            )
        baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
        return cls(*parts, offsets, baseline, int(model.n_features_in_))

    @classmethod
    def from_forest(cls, model: Any, fill: np.ndarray) -> TreeEnsemble:
        """The trees of a fitted single-output forest of regression trees (for example
        ``ExtraTreesRegressor``) fitted on data whose missing values were replaced by
        ``fill`` (one value per feature): a missing value then goes where ``fill`` would."""
        trees = [estimator.tree_ for estimator in model.estimators_]
        sizes = [int(t.node_count) for t in trees]
        offsets = np.cumsum([0, *sizes])[:-1].astype(np.int64)
        shift = np.repeat(offsets, sizes)
        feature = np.concatenate([t.feature for t in trees]).astype(np.int64)
        leaf = feature < 0
        feature[leaf] = 0
        threshold = np.concatenate([t.threshold for t in trees]).astype(np.float64)
        own = np.arange(len(feature), dtype=np.int64)
        left = np.where(leaf, own, np.concatenate([t.children_left for t in trees]) + shift)
        right = np.where(leaf, own, np.concatenate([t.children_right for t in trees]) + shift)
        value = np.concatenate([t.value[:, 0, 0] for t in trees]) / max(len(trees), 1)
        fill = np.asarray(fill, dtype=np.float64)
        missing_left = ~leaf & (fill[feature] <= threshold)
        return cls(
            feature,
            threshold,
            missing_left,
            left.astype(np.int64),
            right.astype(np.int64),
            leaf,
            value.astype(np.float64),
            offsets,
            0.0,
            int(model.n_features_in_),
        )

    def scaled(self, weight: float) -> TreeEnsemble:
        """The ensemble whose prediction is ``weight`` times this one's."""
        return dataclasses.replace(self, value=self.value * weight, baseline=self.baseline * weight)

    def join(self, other: TreeEnsemble) -> TreeEnsemble:
        """One ensemble predicting the sum of this one's and ``other``'s predictions."""
        if other.n_features != self.n_features:
            raise SNEError(
                f"cannot join tree ensembles on {self.n_features} and {other.n_features} features"
            )
        n = len(self.feature)
        cat = lambda a, b: np.concatenate([a, b])  # noqa: E731
        return TreeEnsemble(
            cat(self.feature, other.feature),
            cat(self.threshold, other.threshold),
            cat(self.missing_left, other.missing_left),
            cat(self.left, other.left + n),
            cat(self.right, other.right + n),
            cat(self.leaf, other.leaf),
            cat(self.value, other.value),
            cat(self.roots, other.roots + n),
            self.baseline + other.baseline,
            self.n_features,
        )

    def on_columns(self, columns: np.ndarray, n_features: int) -> TreeEnsemble:
        """The same trees reading ``X[:, columns]`` of an ``X`` with ``n_features`` columns
        (fitted on a subset of the columns, used on all of them)."""
        feature = (
            np.asarray(columns, dtype=np.int64)[self.feature] if len(self.feature) else self.feature
        )
        return dataclasses.replace(self, feature=feature, n_features=int(n_features))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's prediction for each row of ``X`` (NaN: missing)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise SNEError(
                f"expected features of shape (n, {self.n_features}), got shape {X.shape}"
            )
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        rows = np.arange(len(X))[:, None]
        while True:
            inner = ~self.leaf[node]
            if not inner.any():
                break
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(inner, step, node)
        return self.baseline + self.value[node].sum(axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for an ``.npz`` (no objects, no pickle)."""
        out = {name: getattr(self, name) for name in _FIELDS}
        if len(self.feature) < 2**31:  # node indices as int32: a third less to store
            for name in ("feature", "left", "right", "roots"):
                out[name] = out[name].astype(np.int32)
        out["meta"] = np.array([self.baseline, float(self.n_features)])
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TreeEnsemble:
        """Inverse of :meth:`to_arrays`, with the shapes and node indices checked."""
        try:
            parts = [np.asarray(arrays[name]) for name in _FIELDS]
            baseline, n_features = (float(v) for v in np.asarray(arrays["meta"]).ravel()[:2])
        except (KeyError, ValueError) as exc:
            raise SNEError(f"a saved tree ensemble lacks or garbles {exc}") from None
        n = len(parts[0])
        if any(len(p) != n for p in parts[:7]) or any(p.ndim != 1 for p in parts):
            raise SNEError("a saved tree ensemble's node arrays differ in length")
        ints = parts[3], parts[4], parts[7]
        if any(len(a) and (a.min() < 0 or a.max() >= max(n, 1)) for a in ints):
            raise SNEError("a saved tree ensemble points outside its nodes")
        if n and (parts[0][~parts[5].astype(bool)] >= n_features).any():
            raise SNEError("a saved tree ensemble splits on a feature it does not have")
        typed = (
            parts[0].astype(np.int64),
            parts[1].astype(np.float64),
            parts[2].astype(bool),
            parts[3].astype(np.int64),
            parts[4].astype(np.int64),
            parts[5].astype(bool),
            parts[6].astype(np.float64),
            parts[7].astype(np.int64),
        )
        return cls(*typed, baseline, int(n_features))
