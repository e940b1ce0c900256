"""``SNEEmbedder``: networks in, SNE embeddings out, for any scikit-learn estimator after it."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from sne_plugin.errors import SNEError
from sne_plugin.regressor import SNERegressor

__all__ = ["SNEEmbedder"]


class SNEEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Turn networks into SNE embeddings, learned from their targets.

    ``fit(X, y)`` trains a clone of ``regressor`` (an :class:`~sne_plugin.SNERegressor`;
    its defaults when ``None``) on networks ``X`` and targets ``y``, so that the encoder
    learns which features of the weights matter for ``y``; ``transform(X)`` returns its
    ``(n_networks, width)`` embeddings. Any scikit-learn estimator can then sit after it in
    a :class:`~sklearn.pipeline.Pipeline`, and a grid search can tune the encoder through
    ``regressor__<param>``. ``X`` is what ``SNERegressor`` takes: a list of networks, each
    in any form :func:`~sne_plugin.read_weights` accepts.

    >>> import torch
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> nets = [[torch.randn(6, 4) * (1 + i), torch.randn(3, 6)] for i in range(8)]
    >>> accuracy = [0.1 * i for i in range(8)]
    >>> embed = SNEEmbedder(SNERegressor(width=8, heads=1, epochs=2, random_state=0))
    >>> pipe = make_pipeline(embed, Ridge()).fit(nets, accuracy)
    >>> pipe.predict(nets[:2]).shape, embed.transform(nets[:2]).shape
    ((2,), (2, 8))
    """

    def __init__(self, regressor: SNERegressor | None = None) -> None:
        self.regressor = regressor

    def fit(self, X: Any, y: Any = None, side: Any = None) -> SNEEmbedder:
        """Train the encoder on networks ``X``, targets ``y`` (and ``side`` inputs)."""
        if y is None:
            raise SNEError(
                "SNEEmbedder requires y to be passed, but the target y is None: it learns its "
                "encoder from the networks' targets (fit(X, y), one target per network)"
            )
        template = SNERegressor() if self.regressor is None else self.regressor
        if not isinstance(template, SNERegressor):
            raise SNEError(
                f"expected regressor to be an SNERegressor or None, got {type(template).__name__}"
            )
        self.regressor_ = clone(template).fit(X, y, side=side)
        self._n_features_out = int(self.regressor_.transform(X[:1]).shape[1])
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The embeddings of networks ``X``: ``(n_networks, width)`` floats."""
        check_is_fitted(self, "regressor_")
        embedding: np.ndarray = self.regressor_.transform(X)
        return embedding

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        regressor_tags = (self.regressor or SNERegressor()).__sklearn_tags__()
        tags.input_tags = regressor_tags.input_tags
        tags.non_deterministic = regressor_tags.non_deterministic
        tags.target_tags.required = True
        tags.transformer_tags = regressor_tags.transformer_tags
        return tags
