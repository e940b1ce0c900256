"""Random function-preserving permutations of hidden units, for the invariance regulariser.

Permuting the output units of a layer, the matching entries of the norm layers that follow
it, and the matching input units of the next layer leaves the network's function unchanged.
That is only known to hold for plain chains (``NetworkWeights.is_chain``: an MLP or a CNN
without skip connections); other networks are left as they are.

Rules: a *boundary* joins a dense or convolution layer to the next dense or convolution
layer when only norm layers of the same width stand between them and the next layer takes
exactly that many inputs (or, for a dense layer after a convolution, a multiple of it: a
channel-major flatten). Transposed convolutions end a chain. A convolution whose input
count is smaller than its predecessor's output count is grouped: its outputs are not
permuted (the group structure would break).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from sne_plugin.weights import LayerKind, NetworkSpec, NetworkWeights

__all__ = ["Boundary", "boundaries", "permute_network", "random_flat_index"]

_PRODUCERS = {LayerKind.DENSE, LayerKind.CONV1D, LayerKind.CONV2D, LayerKind.CONV3D}


@dataclass(frozen=True)
class Boundary:
    """Hidden units between ``producer`` and ``consumer`` (layer indices) that may be permuted.

    Examples
    --------
    >>> import torch
    >>> mlp = NetworkWeights.from_pairs([(torch.ones(16, 4), None), (torch.ones(3, 16), None)])
    >>> boundaries(mlp.spec)
    (Boundary(producer=0, norms=(), consumer=1, units=16, spatial=1),)
    """

    producer: int
    norms: tuple[int, ...]
    consumer: int
    units: int
    spatial: int  # 1, or the flatten factor when a dense layer follows a convolution


@functools.lru_cache(maxsize=1024)
def boundaries(spec: NetworkSpec) -> tuple[Boundary, ...]:
    """Every permutable boundary of a chain network's spec, input to output."""
    layers = spec.layers
    out = []
    for i, layer in enumerate(layers):
        if layer.kind not in _PRODUCERS or _is_grouped(spec, i):
            continue
        units = layer.weight_shape[0]
        j = i + 1
        while (
            j < len(layers)
            and layers[j].kind is LayerKind.NORM
            and layers[j].weight_shape == (units,)
        ):
            j += 1
        if j == len(layers) or layers[j].kind not in _PRODUCERS:
            continue
        fan_in = layers[j].weight_shape[1]
        if fan_in == units:
            out.append(Boundary(i, tuple(range(i + 1, j)), j, units, 1))
        elif (
            layers[j].kind is LayerKind.DENSE
            and layer.kind is not LayerKind.DENSE
            and fan_in % units == 0
        ):
            out.append(Boundary(i, tuple(range(i + 1, j)), j, units, fan_in // units))
    return tuple(out)


def _is_grouped(spec: NetworkSpec, i: int) -> bool:
    layer = spec.layers[i]
    if layer.kind is LayerKind.DENSE:
        return False
    previous = [p for p in spec.layers[:i] if p.kind in _PRODUCERS]
    return bool(previous) and previous[-1].weight_shape[0] > layer.weight_shape[1]


def random_flat_index(
    spec: NetworkSpec, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """An index ``idx`` with ``flat[idx]`` = the flat vector of a randomly permuted network,
    and the permutation drawn at each boundary."""
    index = np.arange(spec.num_params)
    views = _tensor_views(spec, index)
    perms = []
    for b in boundaries(spec):
        perm = rng.permutation(b.units)
        perms.append(perm)
        _apply(views, b, perm)
    for (w, bias), start in zip(views, _offsets(spec)):
        index[start : start + w.size] = w.reshape(-1)
        if bias is not None:
            index[start + w.size : start + w.size + bias.size] = bias
    return index, perms


def _apply(
    views: list[tuple[np.ndarray, np.ndarray | None]], b: Boundary, perm: np.ndarray
) -> None:
    w, bias = views[b.producer]
    views[b.producer] = (w[perm], None if bias is None else bias[perm])
    for n in b.norms:
        nw, nb = views[n]
        views[n] = (nw[perm], None if nb is None else nb[perm])
    cw, cb = views[b.consumer]
    if b.spatial == 1:
        views[b.consumer] = (cw[:, perm], cb)
    else:
        rows = cw.shape[0]
        blocks = cw.reshape(rows, b.units, b.spatial)[:, perm, :]
        views[b.consumer] = (blocks.reshape(rows, b.units * b.spatial), cb)


@functools.lru_cache(maxsize=1024)
def _offsets(spec: NetworkSpec) -> tuple[int, ...]:
    starts, pos = [], 0
    for layer in spec.layers:
        starts.append(pos)
        pos += layer.num_params
    return tuple(starts)


def _tensor_views(
    spec: NetworkSpec, index: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    views: list[tuple[np.ndarray, np.ndarray | None]] = []
    for start, layer in zip(_offsets(spec), spec.layers):
        n = math.prod(layer.weight_shape)
        w = index[start : start + n].reshape(layer.weight_shape).copy()
        bias = (
            None if layer.bias_shape is None else index[start + n : start + layer.num_params].copy()
        )
        views.append((w, bias))
    return views


def permute_network(
    net: NetworkWeights, rng: np.random.Generator
) -> tuple[NetworkWeights, list[np.ndarray]]:
    """A randomly permuted copy of a chain network (unchanged if not a chain) and the perms.

    >>> import numpy as np, torch
    >>> pairs = [(torch.randn(4, 3), torch.randn(4)), (torch.randn(2, 4), None)]
    >>> net = NetworkWeights.from_pairs(pairs)
    >>> permuted, perms = permute_network(net, np.random.default_rng(0))
    >>> [len(p) for p in perms]
    [4]
    """
    if not net.is_chain:
        return net, []
    import torch

    index, perms = random_flat_index(net.spec, rng)
    flat = torch.from_numpy(net.flatten()[index])
    layers, pos = [], 0
    for layer in net.layers:
        n = layer.weight.numel()
        weight = flat[pos : pos + n].reshape(layer.weight.shape).to(layer.weight.dtype)
        pos += n
        bias = None
        if layer.bias is not None:
            bias = flat[pos : pos + layer.bias.numel()].to(layer.bias.dtype)
            pos += layer.bias.numel()
        layers.append(layer.replace(weight, bias))
    return net.with_layers(layers), perms
