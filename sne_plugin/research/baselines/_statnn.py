"""StatNN (Unterthiner et al. 2020): per-tensor statistics of the weights -> gradient boosting."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from sne_plugin.encoder.stats import STATNN_FEATURES, tensor_statistics
from sne_plugin.research.baselines._common import as_networks, check_targets
from sne_plugin.weights import NetworkWeights

__all__ = ["STATNN_FEATURES", "StatNNRegressor", "tensor_statistics"]

# The seven features and their computation live in the core package, where SNERegressor's
# stats branch summarises them over layers (sne_plugin.encoder.stats).


def network_statistics(net: NetworkWeights) -> np.ndarray:
    """One row ``(n_tensors, 7)``: the statistics of each weight and bias, in layer order."""
    return np.stack([tensor_statistics(t) for t in net.tensors()])


class StatNNRegressor(RegressorMixin, BaseEstimator):
    """Per-tensor statistics of the weights fed to gradient boosting (StatNN).

    Unterthiner et al. 2020, "Predicting Neural Network Accuracy from Weights". Each weight
    and each bias tensor gives seven numbers (mean, variance, and the 0, 25, 50, 75 and 100%
    quantiles); they are concatenated in layer order (weight before bias) into one feature
    vector, and a :class:`~sklearn.ensemble.HistGradientBoostingRegressor` maps it to the
    target.

    Networks of different architectures: features are aligned by tensor position. ``fit``
    sets ``n_tensors_`` to the most tensors any training network has; shorter networks are
    padded with NaN (which histogram gradient boosting handles as missing values). At
    predict/transform time networks with more tensors are truncated to ``n_tensors_`` and
    shorter ones padded with NaN. The alignment is by position only: a bias and a weight may
    share a column across architectures.

    Parameters
    ----------
    n_estimators:
        Boosting iterations (``max_iter`` of the histogram gradient boosting).
    learning_rate, max_depth, max_leaf_nodes, min_samples_leaf, l2_regularization:
        Passed to :class:`~sklearn.ensemble.HistGradientBoostingRegressor`.
    random_state:
        Seed of the booster (it draws randomness only for binning large data).

    Examples
    --------
    >>> import torch
    >>> from sne_plugin import NetworkWeights
    >>> from sne_plugin.research.baselines import StatNNRegressor
    >>> g = torch.Generator().manual_seed(0)
    >>> nets = [NetworkWeights.from_pairs([(torch.randn(8, 4, generator=g) * s, torch.zeros(8)),
    ...                                    (torch.randn(2, 8, generator=g), None)])
    ...         for s in torch.linspace(0.1, 1.0, 40).tolist()]
    >>> acc = torch.linspace(0.2, 0.9, 40).tolist()
    >>> model = StatNNRegressor(n_estimators=20, min_samples_leaf=5).fit(nets, acc)
    >>> model.transform(nets[:2]).shape, model.n_tensors_
    ((2, 21), 3)
    >>> model.predict(nets[:2]).shape
    (2,)
    """

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.1,
        max_depth: int | None = None,
        max_leaf_nodes: int | None = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> StatNNRegressor:
        """Compute the statistics of each network in ``X`` and fit the booster; returns self."""
        nets = as_networks(X)
        target = check_targets(y, len(nets), loss="mse")
        rows = [network_statistics(net) for net in nets]
        self.n_tensors_ = max(len(r) for r in rows)
        features = self._align(rows)
        self.n_features_in_ = features.shape[1]
        self.booster_ = self._make_booster().fit(features, target)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The feature matrix ``(n_networks, 7 * n_tensors_)``, aligned as in ``fit``."""
        check_is_fitted(self, "booster_")
        nets = as_networks(X)
        return self._align([network_statistics(net) for net in nets])

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, one float per network."""
        check_is_fitted(self, "booster_")
        return np.asarray(self.booster_.predict(self.transform(X)), dtype=np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Column names ``t{i}_{stat}``: tensor position ``i`` (weights and biases counted)."""
        check_is_fitted(self, "booster_")
        names = [f"t{i}_{stat}" for i in range(self.n_tensors_) for stat in STATNN_FEATURES]
        return np.asarray(names, dtype=object)

    def _align(self, rows: list[np.ndarray]) -> np.ndarray:
        features = np.full((len(rows), self.n_tensors_, len(STATNN_FEATURES)), np.nan)
        for i, row in enumerate(rows):
            kept = row[: self.n_tensors_]
            features[i, : len(kept)] = kept
        return features.reshape(len(rows), -1)

    def _make_booster(self) -> HistGradientBoostingRegressor:
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return HistGradientBoostingRegressor(
            max_iter=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=seed,
        )
