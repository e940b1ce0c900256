"""What the baselines share with :class:`~sne_plugin.SNERegressor` (from
:mod:`sne_plugin._inputs`: networks in, targets in, the loss, predictions out), and shapes in
messages."""

from __future__ import annotations

from sne_plugin._inputs import (
    as_networks,
    check_targets,
    prediction,
    resolve_loss,
    target_scale,
)
from sne_plugin.weights import NetworkSpec

__all__ = [
    "as_networks",
    "check_targets",
    "prediction",
    "resolve_loss",
    "spec_text",
    "target_scale",
]


def spec_text(spec: NetworkSpec) -> str:
    """The shapes of a network for messages: ``[(16, 8)+(16,), (3, 16)]``."""
    parts = []
    for layer in spec.layers:
        bias = "" if layer.bias_shape is None else f"+{layer.bias_shape}"
        parts.append(f"{layer.weight_shape}{bias}")
    return "[" + ", ".join(parts) + "]"
