"""What the estimators share about their data: networks in, targets in, predictions out.

``X`` (a list of networks in any supported form) -> checked :class:`NetworkWeights`; ``y`` ->
checked float targets, and the loss they call for; a model's raw output -> a prediction.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import DataConversionWarning

from sne_plugin.errors import SNEError, describe
from sne_plugin.weights import Layer, LayerKind, NetworkWeights

__all__ = [
    "LOSSES",
    "as_networks",
    "check_finite",
    "check_targets",
    "prediction",
    "resolve_loss",
    "target_scale",
]

LOSSES = ("auto", "bce", "mse")


def as_networks(X: object, *, strict: bool = True) -> list[NetworkWeights]:
    """Read every item of ``X`` as one network; at least one, every weight finite.

    ``X`` is a list (or tuple) whose items are anything :func:`sne_plugin.read_weights`
    accepts. One convention makes numeric matrices usable too: a 2-D float array of shape
    ``(n, d)`` is read as ``n`` networks, each a single dense layer whose ``(1, d)`` weight
    is the row. (A list of lists of floats is *not* a matrix here: each item is a network.)

    >>> as_networks([])
    Traceback (most recent call last):
    ...
    sne_plugin.errors.SNEError: expected at least one network in X, got an empty list
    """
    nets = _read(X, strict)
    _check_not_empty(len(nets), "an empty list")
    check_finite(nets)
    return nets


def check_finite(nets: Sequence[NetworkWeights]) -> None:
    """Raise :class:`SNEError` naming the first network (and its layer) with a NaN or inf."""
    for i, net in enumerate(nets):
        if not net.is_finite():
            bad = next(layer.name for layer in net.layers if not _finite(layer))
            raise SNEError(
                f"X[{i}] ({net.source}): weights contain NaN or inf (first in layer {bad!r}); "
                "every weight must be finite"
            )


def _finite(layer: Layer) -> bool:
    return all(bool(t.isfinite().all()) for t in (layer.weight, layer.bias) if t is not None)


def _check_not_empty(n: int, got: str) -> None:
    if n == 0:
        raise SNEError(f"expected at least one network in X, got {got}")


def _read(X: object, strict: bool) -> list[NetworkWeights]:
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype != object:
        return _rows_as_networks(X)
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype != object:
        raise SNEError(
            f"expected a list of networks or a 2-D array (one row per network), got a 1-D array "
            f"of shape {X.shape}. Reshape your data with X.reshape(1, -1) if it is one network"
        )
    if (
        isinstance(X, NetworkWeights)
        or not isinstance(X, (Sequence, np.ndarray))
        or isinstance(X, (str, bytes))
    ):
        raise SNEError(
            f"expected a list of networks (one item per network), got {describe(X)}; "
            "wrap a single network in a list: [network]"
        )
    items = list(X)
    if all(isinstance(item, NetworkWeights) for item in items):
        return items
    from sne_plugin.readers import read_many

    return read_many(items, strict=strict)


def _rows_as_networks(X: np.ndarray) -> list[NetworkWeights]:
    if np.iscomplexobj(X) or not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise SNEError(
            "Complex data not supported: expected a real-valued 2-D array of networks, "
            f"got dtype {X.dtype}"
        )
    _check_not_empty(X.shape[0], f"0 rows (shape={X.shape})")
    if X.shape[1] == 0:
        raise SNEError(
            f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required: each row is a "
            "network's weights and cannot be empty"
        )
    import torch

    rows = torch.as_tensor(np.asarray(X, dtype=np.float32))
    return [
        NetworkWeights(
            (Layer(LayerKind.DENSE, "row", rows[i : i + 1]),), source=f"X[{i}]", is_chain=True
        )
        for i in range(len(rows))
    ]


def check_targets(y: object, n: int, *, loss: str) -> np.ndarray:
    """``y`` as a float64 vector of length ``n``; finite; inside [0, 1] for ``bce``."""
    if y is None:
        raise SNEError("this estimator requires y to be passed, but the target y is None")
    try:
        target = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise SNEError(f"expected numeric targets y, got {describe(y)}") from None
    if target.ndim == 2 and target.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it is raveled",
            DataConversionWarning,
            stacklevel=3,
        )
        target = target[:, 0]
    if target.ndim != 1:
        raise SNEError(f"expected a 1-d target vector y, got shape {target.shape}")
    if len(target) != n:
        raise SNEError(f"X has {n} networks but y has {len(target)} targets; they must match")
    bad = np.flatnonzero(~np.isfinite(target))
    if len(bad):
        raise SNEError(f"y has {len(bad)} NaN/inf targets (first at index {bad[0]})")
    if loss == "bce" and (target.min() < 0 or target.max() > 1):
        raise SNEError(
            f"loss='bce' needs targets in [0, 1] (accuracies), got values in "
            f"[{target.min():.4g}, {target.max():.4g}]; use loss='mse' for unbounded targets"
        )
    return target


def resolve_loss(loss: str, y: object) -> str:
    """``"bce"`` or ``"mse"``; ``"auto"`` picks bce when every target is inside [0, 1].

    >>> resolve_loss("auto", [0.2, 0.9]), resolve_loss("auto", [-1.0, 3.0])
    ('bce', 'mse')
    """
    if loss not in LOSSES:
        raise SNEError(f"expected loss to be one of {LOSSES}, but got {loss=}")
    if loss != "auto":
        return loss
    try:
        target = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        return "mse"  # check_targets reports the bad targets
    inside = target.size > 0 and bool(np.all((target >= 0) & (target <= 1)))
    return "bce" if inside else "mse"


def target_scale(target: np.ndarray, loss: str) -> tuple[float, float]:
    """``(mean, scale)`` that standardise the targets for ``mse``; ``(0, 1)`` for ``bce``.

    Computed on the targets divided by their largest magnitude, so that huge targets (whose
    squares overflow float64, from about 1e154) standardise as well as small ones; targets
    beyond ``_TARGET_LIMIT`` are refused, since a prediction a few deviations away would not
    be representable.
    """
    if loss != "mse":
        return 0.0, 1.0
    top = float(np.abs(target).max()) if len(target) else 0.0
    if top > _TARGET_LIMIT:
        raise SNEError(
            f"loss='mse' needs targets within +-{_TARGET_LIMIT:.0e}, got values in "
            f"[{target.min():.4g}, {target.max():.4g}]; rescale y (for example its logarithm)"
        )
    unit = top if top > 0 else 1.0
    std = float((target / unit).std()) * unit
    return float((target / unit).mean()) * unit, std if std > 0 else 1.0


_TARGET_LIMIT = 1e300


def prediction(out: np.ndarray, loss: str, mean: float, scale: float) -> np.ndarray:
    """A model's raw outputs -> predicted targets: the sigmoid of a ``bce`` logit, or the
    ``mse`` output unstandardised by :func:`target_scale`'s ``(mean, scale)``."""
    if loss == "bce":
        return 1.0 / (1.0 + np.exp(-out))
    return out * scale + mean
