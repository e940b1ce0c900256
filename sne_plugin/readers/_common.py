"""Helpers shared by the readers: building checked layers and reporting what was skipped."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sne_plugin.errors import SNEError
from sne_plugin.weights import Layer, LayerKind, NetworkWeights

__all__ = ["Skipped", "finish", "make_layer", "shape_of"]


def shape_of(tensor: torch.Tensor | None) -> tuple[int, ...] | None:
    """The shape as a plain tuple (for messages), or None."""
    if tensor is None or tensor.is_nested:  # a nested tensor has no single shape
        return None
    return tuple(tensor.shape)


def _out_dim(kind: LayerKind, weight: torch.Tensor, groups: int) -> int:
    if kind.value.startswith("conv_transpose"):
        return int(weight.shape[1]) * groups
    if kind is LayerKind.NORM:
        return int(weight.numel())
    return int(weight.shape[0])


def make_layer(
    kind: LayerKind,
    name: str,
    weight: object,
    bias: object | None,
    *,
    source: str,
    groups: int = 1,
) -> Layer:
    """A :class:`Layer`, with the bias length checked against the weight's output dim.

    >>> make_layer(LayerKind.DENSE, "fc", torch.ones(3, 2), torch.ones(3), source="demo").spec
    LayerSpec(kind=<LayerKind.DENSE: 'dense'>, name='fc', weight_shape=(3, 2), bias_shape=(3,))
    """
    try:
        layer = Layer(kind, name, weight, bias)  # type: ignore[arg-type]
    except SNEError as exc:
        raise SNEError(f"{source}: {exc}") from None
    if layer.bias is not None:
        expected = _out_dim(kind, layer.weight, groups)
        if layer.bias.numel() != expected:
            raise SNEError(
                f"{source}, layer {name!r} ({kind.value}): expected a bias of length {expected} "
                f"(the output dim of weight {shape_of(layer.weight)}), "
                f"got shape {shape_of(layer.bias)}"
            )
    return layer


@dataclass
class Skipped:
    """Parameters a reader found but could not read: (name, type) pairs."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, what: str) -> None:
        self.items.append((name, what))

    def report(self, source: str, *, strict: bool) -> None:
        """Raise (strict) or warn about everything skipped; do nothing when nothing was."""
        if not self.items:
            return
        listed = ", ".join(f"{name!r} ({what})" for name, what in self.items)
        if strict:
            raise SNEError(
                f"{source}: cannot read the parameters of {len(self.items)} module(s)/op(s): "
                f"{listed}; pass strict=False to skip them"
            )
        warnings.warn(f"{source}: skipped unreadable parameters of {listed}", stacklevel=4)


def finish(
    layers: Sequence[Layer],
    skipped: Skipped,
    *,
    source: str,
    strict: bool,
    is_chain: bool,
    meta: dict[str, object] | None = None,
) -> NetworkWeights:
    """Report what was skipped, refuse an empty network, and build the container."""
    skipped.report(source, strict=strict)
    if not layers:
        raise SNEError(
            f"{source}: expected a network with at least one readable layer "
            "(dense, conv, norm, embedding, attention), found none"
        )
    return NetworkWeights(tuple(layers), source=source, is_chain=is_chain, meta=dict(meta or {}))
