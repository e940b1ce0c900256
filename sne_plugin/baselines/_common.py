"""Input checks shared by the baselines: networks in, targets in, losses and shapes in messages."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sne_plugin.errors import SNEError, describe
from sne_plugin.weights import NetworkSpec, NetworkWeights

__all__ = ["as_networks", "check_finite", "check_targets", "resolve_loss", "spec_text"]

_LOSSES = ("auto", "bce", "mse")


def as_networks(X: object) -> list[NetworkWeights]:
    """Read every item of ``X`` (a list, one item per network) as :class:`NetworkWeights`.

    Delegates to :func:`sne_plugin.readers.read_many` when that is importable; otherwise
    accepts :class:`NetworkWeights` items and sequences of ``(weight, bias)`` pairs.
    """
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1:
        X = list(X)
    if not isinstance(X, (list, tuple)):
        raise SNEError(
            f"expected a list of networks (one item per network), got {describe(X)}; "
            "wrap a single network in a list: [network]"
        )
    if not X:
        raise SNEError("expected at least one network, got an empty list")
    if all(isinstance(item, NetworkWeights) for item in X):
        return list(X)
    try:
        from sne_plugin.readers import read_many
    except ImportError:
        return [_from_pairs(i, item) for i, item in enumerate(X)]
    return read_many(list(X), strict=True)


def _from_pairs(index: int, item: object) -> NetworkWeights:
    if isinstance(item, NetworkWeights):
        return item
    if not isinstance(item, Sequence) or isinstance(item, (str, bytes)):
        raise SNEError(
            f"X[{index}]: expected NetworkWeights or a list of (weight, bias) pairs, "
            f"got {describe(item)}"
        )
    pairs = [p if isinstance(p, tuple) else (p, None) for p in item]
    try:
        return NetworkWeights.from_pairs(pairs, source=f"X[{index}]")
    except SNEError as exc:
        raise SNEError(f"X[{index}]: {exc}") from None


def check_finite(nets: Sequence[NetworkWeights]) -> None:
    """Raise :class:`SNEError` naming the first network with a NaN or infinite weight."""
    for i, net in enumerate(nets):
        if not net.is_finite():
            raise SNEError(
                f"X[{i}] ({net.source}): the weights contain NaN or inf values; "
                "every weight must be finite"
            )


def resolve_loss(loss: str, y: object) -> str:
    """``"bce"`` or ``"mse"``; ``"auto"`` picks bce when every target is inside [0, 1]."""
    if loss not in _LOSSES:
        raise SNEError(f"expected loss to be one of {_LOSSES}, but got {loss=}")
    if loss != "auto":
        return loss
    try:
        target = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        return "mse"  # check_targets reports the bad targets
    inside = target.size > 0 and bool(np.all((target >= 0) & (target <= 1)))
    return "bce" if inside else "mse"


def check_targets(y: object, n: int, *, loss: str) -> np.ndarray:
    """``y`` as a finite float64 vector of length ``n``; inside [0, 1] for ``loss="bce"``."""
    try:
        target = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise SNEError(f"expected numeric targets y, got {describe(y)}") from None
    if target.ndim == 2 and target.shape[1] == 1:
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


def spec_text(spec: NetworkSpec) -> str:
    """The shapes of a network for messages: ``[(16, 8)+(16,), (3, 16)]``."""
    parts = []
    for layer in spec.layers:
        bias = "" if layer.bias_shape is None else f"+{layer.bias_shape}"
        parts.append(f"{layer.weight_shape}{bias}")
    return "[" + ", ".join(parts) + "]"
