"""Arrange the layers a graph reader found as the module reader arranges them.

* A weight tied to one read before (an output head sharing the embedding's table; an
  exporter may store it a second time, transposed) is dropped: a 2-d weight of a dense,
  embedding or attention layer whose values equal an earlier one's, as stored or
  transposed, with no bias or the same bias, from another tensor of the graph or in a
  layer of another kind (one tensor used by two dense layers is a module applied twice:
  read per use). Weights of one repeated value (fills of zeros or ones) are never ties.
* A bare parameter (token, position table, layer scale, bias table) is placed before the
  first layer of its module, as the module reader reads a module's own parameters before
  its children; bare parameters of one module in ``ranks`` order (their order in the
  module's state dict, where the graph records it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch

from sne_plugin.readers._families import BARE_KINDS
from sne_plugin.readers.canonical import BatchNormStats
from sne_plugin.weights import Layer, LayerKind

__all__ = ["arrange"]

_TIEABLE = {LayerKind.DENSE, LayerKind.EMBEDDING, LayerKind.ATTENTION}


def arrange(
    layers: Sequence[Layer],
    origins: Sequence[str],
    ranks: Mapping[str, int],
    batchnorms: Sequence[BatchNormStats],
) -> tuple[list[Layer], list[BatchNormStats], list[str]]:
    """``layers`` (read from the tensors named ``origins``) without ties and with bare
    parameters placed, the BatchNorms (by index) renumbered to match, and the names of the
    tied layers dropped.

    >>> from sne_plugin.weights import Layer, LayerKind
    >>> table = torch.randn(5, 3)
    >>> out, _, tied = arrange(
    ...     [Layer(LayerKind.EMBEDDING, "wte", table), Layer(LayerKind.DENSE, "head", table.T)],
    ...     ["wte", "head"], {}, [])
    >>> [layer.name for layer in out], tied
    (['wte'], ['head'])
    """
    kept, tied = _untied(layers, origins)
    order = _placed(layers, kept, ranks)
    index = {old: new for new, old in enumerate(order)}
    stats = [
        replace(bn, producer=index[bn.producer], norm=index[bn.norm])
        for bn in batchnorms
        if bn.producer in index and bn.norm in index
    ]
    return [layers[i] for i in order], stats, [layers[i].name for i in tied]


def _untied(layers: Sequence[Layer], origins: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indices of the layers kept and of those tied to an earlier one."""
    kept: list[int] = []
    tied: list[int] = []
    candidates: dict[tuple[int, ...], list[int]] = {}
    for i, layer in enumerate(layers):
        key = tuple(sorted(layer.weight.shape))
        if _tieable(layer) and any(
            _same(layer, layers[j]) and (origins[i] != origins[j] or layer.kind != layers[j].kind)
            for j in candidates.get(key, [])
        ):
            tied.append(i)
            continue
        kept.append(i)
        if _tieable(layer):
            candidates.setdefault(key, []).append(i)
    return kept, tied


def _tieable(layer: Layer) -> bool:
    weight = layer.weight
    if layer.kind not in _TIEABLE or weight.dim() != 2 or weight.numel() < 2:
        return False
    return not bool((weight == weight.reshape(-1)[0]).all())


def _same(layer: Layer, first: Layer) -> bool:
    """Whether ``layer`` holds ``first``'s weight (as stored or transposed) and no other
    bias than ``first``'s."""
    if layer.bias is not None and (
        first.bias is None
        or first.bias.shape != layer.bias.shape
        or not torch.equal(first.bias, layer.bias)
    ):
        return False
    weight, other = layer.weight, first.weight
    if weight.shape == other.shape and torch.equal(weight, other):
        return True
    return weight.shape == other.T.shape and torch.equal(weight, other.T)


def _placed(layers: Sequence[Layer], kept: list[int], ranks: Mapping[str, int]) -> list[int]:
    """The order of the ``kept`` layers with each bare parameter moved to its module."""
    bare = [i for i in kept if layers[i].kind in BARE_KINDS]
    order = [i for i in kept if layers[i].kind not in BARE_KINDS]
    for i in sorted(bare, key=lambda i: (ranks.get(layers[i].name, len(ranks)), i)):
        order.insert(_slot(layers, order, i), i)
    return order


def _slot(layers: Sequence[Layer], order: list[int], i: int) -> int:
    """Before the first layer of the module of bare parameter ``i`` (by name), else where
    the graph met it."""
    module = layers[i].name.rpartition(".")[0]
    for pos, j in enumerate(order):
        if module and layers[j].kind not in BARE_KINDS and layers[j].name.startswith(f"{module}."):
            return pos
    return next((pos for pos, j in enumerate(order) if j > i), len(order))
