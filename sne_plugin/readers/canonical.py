"""The canonical form of a network: one network gives one encoding, whatever form it came in.

A network arrives as a module, a state dict, a checkpoint, or an ONNX file from either
exporter, and the exporters change it on the way: with their default settings they fold
eval-mode BatchNorm into the layer before it, and they drop biases that are all zeros. The
readers therefore bring every form to the one the exporters produce:

* **BatchNorm folded.** A BatchNorm (with running statistics) that directly follows a dense
  layer or a convolution (not a transposed one) is folded into it, as in eval mode:
  ``w' = w * s`` and ``b' = (b - mean) * s + beta`` per output channel, with
  ``s = gamma / sqrt(var + eps)``; the norm layer disappears. "Directly follows" is read
  from the data path where there is one: a module is traced with ``torch.fx`` (the
  BatchNorm's input is the layer's output and nothing else uses it), and where it cannot
  be traced, the two are neighbours in one ``nn.Sequential``; an ONNX graph has its
  edges. A state dict has no data path: there a BatchNorm (a group with ``running_mean``
  and ``running_var``) is folded into the layer whose keys come just before it, when that
  is a dense layer or convolution of as many output channels, with ``eps = 1e-5`` (the
  default; a state dict does not record it).
* **Zero biases absent.** The all-zero bias of a dense, conv or attention layer is dropped
  (``bias=None``), as the dynamo exporter's optimizer drops an ``Add`` of zeros: a layer
  built with ``bias=False`` and one whose bias is zero are one network. Norms keep theirs
  (the exporters keep a norm's zero bias).

``read_weights`` returns this form unless asked for the layers as stored
(``canonical=False``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sne_plugin.weights import Layer, LayerKind, NetworkWeights

__all__ = [
    "BatchNormStats",
    "canonical",
    "drop_zero_biases",
    "fold_batchnorms",
    "module_batchnorms",
    "state_dict_batchnorms",
]

DEFAULT_EPS = 1e-5
_FOLDABLE = (LayerKind.DENSE, LayerKind.CONV1D, LayerKind.CONV2D, LayerKind.CONV3D)
_PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class BatchNormStats:
    """One BatchNorm to fold: the layer it follows, its own layer (None without affine
    parameters: then gamma is 1 and beta 0), each by name or by index in the network, and
    its running statistics.

    Examples
    --------
    A BatchNorm without affine parameters after ``fc``: folded, ``fc`` computes
    ``(W x + b - mean) / sqrt(var + eps)`` itself.

    >>> import torch
    >>> net = NetworkWeights.from_pairs([(torch.ones(2, 3), torch.zeros(2))], names=["fc"])
    >>> bn = BatchNormStats("fc", None, mean=torch.tensor([1.0, 2.0]), var=torch.full((2,), 4.0),
    ...                     eps=0.0)
    >>> fc = canonical(net, [bn]).layers[0]
    >>> fc.weight[:, 0].tolist(), fc.bias.tolist()
    ([0.5, 0.5], [-0.5, -1.0])
    """

    producer: str | int
    norm: str | int | None
    mean: torch.Tensor
    var: torch.Tensor
    eps: float = DEFAULT_EPS


def canonical(net: NetworkWeights, batchnorms: Sequence[BatchNormStats] = ()) -> NetworkWeights:
    """``net`` with ``batchnorms`` folded and all-zero biases dropped (see the module doc).

    >>> import torch
    >>> net = NetworkWeights.from_pairs([(torch.ones(3, 2), torch.zeros(3))])
    >>> canonical(net).spec.layers[0].bias_shape is None
    True
    """
    return drop_zero_biases(fold_batchnorms(net, batchnorms))


def drop_zero_biases(net: NetworkWeights) -> NetworkWeights:
    """``net`` without the all-zero biases of its dense, conv and attention layers (the same
    object when it has none)."""
    if not any(_zero_bias(layer) for layer in net.layers):
        return net
    layers = [
        layer.replace(layer.weight, None) if _zero_bias(layer) else layer for layer in net.layers
    ]
    return net.with_layers(layers)


def _zero_bias(layer: Layer) -> bool:
    if layer.bias is None or layer.kind in (LayerKind.NORM, LayerKind.EMBEDDING):
        return False
    return not bool(layer.bias.any())


def fold_batchnorms(net: NetworkWeights, batchnorms: Sequence[BatchNormStats]) -> NetworkWeights:
    """``net`` with each BatchNorm folded into its producer, its own layer removed.

    >>> import torch
    >>> net = NetworkWeights.from_pairs([(torch.ones(2, 3), None), (torch.full((2,), 2.0), None)],
    ...                                 names=["fc", "bn"])
    >>> stats = BatchNormStats("fc", "bn", mean=torch.ones(2), var=torch.full((2,), 3.0), eps=1.0)
    >>> folded = fold_batchnorms(net, [stats])
    >>> [layer.name for layer in folded], folded.layers[0].weight[0].tolist()
    (['fc'], [1.0, 1.0, 1.0])
    """
    by_name = {layer.name: i for i, layer in enumerate(net.layers)}
    layers: list[Layer | None] = list(net.layers)

    def index(ref: str | int | None) -> int | None:
        return ref if isinstance(ref, int) else by_name.get(ref) if ref is not None else None

    changed = False
    for stats in batchnorms:
        i, j = index(stats.producer), index(stats.norm)
        producer = layers[i] if i is not None else None
        norm = layers[j] if j is not None else None
        if i is None or producer is None or (stats.norm is not None and norm is None):
            continue  # already folded, or not read: leave it
        if not _can_fold(producer, stats):
            continue
        layers[i], changed = _folded(producer, norm, stats), True
        if j is not None:
            layers[j] = None
    return net.with_layers([x for x in layers if x is not None]) if changed else net


def _can_fold(producer: Layer, stats: BatchNormStats) -> bool:
    width = int(producer.weight.shape[0])
    return producer.kind in _FOLDABLE and stats.mean.shape == (width,) == stats.var.shape


def _folded(producer: Layer, norm: Layer | None, stats: BatchNormStats) -> Layer:
    dtype = producer.weight.dtype
    w = producer.weight.to(torch.float64)
    mean, var = stats.mean.to(torch.float64), stats.var.to(torch.float64)
    gamma = torch.ones_like(mean) if norm is None else norm.weight.to(torch.float64)
    beta = torch.zeros_like(mean)
    if norm is not None and norm.bias is not None:
        beta = norm.bias.to(torch.float64)
    bias = torch.zeros_like(mean) if producer.bias is None else producer.bias.to(torch.float64)
    scale = gamma / torch.sqrt(var + stats.eps)
    weight = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
    return producer.replace(weight.to(dtype), ((bias - mean) * scale + beta).to(dtype))


# -- where the BatchNorms are ------------------------------------------------------------------


def module_batchnorms(module: nn.Module) -> list[BatchNormStats]:
    """The BatchNorms of ``module`` that directly follow a dense layer or convolution."""
    pairs = _traced_pairs(module)
    if pairs is None:
        pairs = _sequential_pairs(module)
    found = []
    for norm_name, producer_name in pairs.items():
        bn = module.get_submodule(norm_name)
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_mean is None:
            continue
        var = bn.running_var
        if var is None:
            continue
        affine = isinstance(bn.weight, torch.Tensor)
        found.append(
            BatchNormStats(
                producer_name,
                norm_name if affine else None,
                bn.running_mean.detach(),
                var.detach(),
                float(bn.eps),
            )
        )
    return found


def _is_producer(module: nn.Module) -> bool:
    return isinstance(module, _PRODUCERS)


def _is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _traced_pairs(module: nn.Module) -> dict[str, str] | None:
    """BatchNorm name -> the layer whose output it alone takes, from an fx trace (None when
    the module cannot be traced)."""
    key = tuple((name, type(sub)) for name, sub in module.named_modules())
    if key not in _TRACED:
        _TRACED[key] = _trace_pairs(module)
        while len(_TRACED) > 256:
            _TRACED.pop(next(iter(_TRACED)))
    return _TRACED[key]


_TRACED: dict[tuple[Any, ...], dict[str, str] | None] = {}


def _trace_pairs(module: nn.Module) -> dict[str, str] | None:
    if _is_batchnorm(module) or _is_producer(module):
        return {}  # a single layer: nothing to pair
    try:
        graph = torch.fx.Tracer().trace(module)
    except Exception:  # data-dependent control flow, unsupported ops
        return None
    pairs = {}
    for node in graph.nodes:
        if node.op != "call_module" or not _is_batchnorm(module.get_submodule(str(node.target))):
            continue
        source = node.args[0] if node.args else None
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and len(source.users) == 1
            and _is_producer(module.get_submodule(str(source.target)))
        ):
            pairs[str(node.target)] = str(source.target)
    return pairs


def _sequential_pairs(module: nn.Module) -> dict[str, str]:
    pairs = {}
    for prefix, sub in module.named_modules():
        if not isinstance(sub, nn.Sequential):
            continue
        children = list(sub.named_children())
        for (a_name, a), (b_name, b) in itertools.pairwise(children):
            if _is_producer(a) and _is_batchnorm(b):
                join = f"{prefix}." if prefix else ""
                pairs[f"{join}{b_name}"] = f"{join}{a_name}"
    return pairs


def state_dict_batchnorms(state: Mapping[Any, object], net: NetworkWeights) -> list[BatchNormStats]:
    """The BatchNorms of a state dict (groups with running statistics) and the layer read
    just before each (see the module doc: a guess, since a state dict has no data path)."""
    layers = {layer.name: layer for layer in net.layers}
    found, previous = [], None
    for prefix in _prefixes(state):
        mean, var = state.get(f"{prefix}.running_mean"), state.get(f"{prefix}.running_var")
        if mean is not None and var is not None and previous is not None:
            mean_t, var_t = _tensor(mean), _tensor(var)
            norm = prefix if prefix in layers else None
            if mean_t is not None and var_t is not None:
                found.append(BatchNormStats(previous, norm, mean_t, var_t))
            previous = None
            continue
        if prefix in layers and layers[prefix].kind in _FOLDABLE:
            previous = prefix
        elif prefix in layers:
            previous = None
    return found


def _prefixes(state: Mapping[Any, object]) -> list[str]:
    keys = [key for key in state if isinstance(key, str) and "." in key]
    return list(dict.fromkeys(key.rpartition(".")[0] for key in keys))


def _tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        return None  # not numbers: the state-dict reader has said what is wrong
