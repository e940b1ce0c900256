"""Input checks shared by the baselines: networks in, targets in, losses and shapes in messages."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sne_plugin._inputs import as_networks as read_networks
from sne_plugin._inputs import check_targets
from sne_plugin.errors import SNEError
from sne_plugin.weights import NetworkSpec, NetworkWeights

__all__ = ["as_networks", "check_finite", "check_targets", "resolve_loss", "spec_text"]

_LOSSES = ("auto", "bce", "mse")


def as_networks(X: object) -> list[NetworkWeights]:
    """Read every item of ``X`` (a list, one item per network) as :class:`NetworkWeights`
    (the estimators' common reading, :func:`sne_plugin._inputs.as_networks`)."""
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1:
        X = list(X)
    nets = read_networks(X)
    if not nets:
        raise SNEError("expected at least one network, got an empty list")
    return nets


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


def spec_text(spec: NetworkSpec) -> str:
    """The shapes of a network for messages: ``[(16, 8)+(16,), (3, 16)]``."""
    parts = []
    for layer in spec.layers:
        bias = "" if layer.bias_shape is None else f"+{layer.bias_shape}"
        parts.append(f"{layer.weight_shape}{bias}")
    return "[" + ", ".join(parts) + "]"
