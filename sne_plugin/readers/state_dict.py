"""Read weights from a state dict, a torch checkpoint file, or a list of arrays.

State dicts (a mapping from name to tensor or array, in insertion order):

* ``X.weight`` and ``X.bias`` form one layer named ``X``; the kind follows the weight's
  dims (1: norm, 2: dense, 3/4/5: conv 1d/2d/3d). A 1-d ``weight`` is a norm's gamma; a
  2-d weight is read as dense even when it belongs to an ``nn.Embedding`` or the kind is a
  transposed conv, since a state dict does not record module types (read the module itself
  to keep those kinds).
* ``X.in_proj_weight``/``X.in_proj_bias`` (``nn.MultiheadAttention``) form an attention
  layer ``X.in_proj``, and ``X.out_proj`` beside it is an attention layer too.
* ``num_batches_tracked``, ``running_mean`` and ``running_var`` are buffers, not learned
  weights: they are ignored. Any other key is unreadable (strict: an error).
* ``is_chain`` is a guess, since a state dict has no graph: True only when every layer is
  dense or conv, or a norm of the width of the layer before it, and each layer's input
  width matches the previous dense or conv layer's output width (a dense layer after a
  conv: a multiple of it). A residual network whose blocks keep one
  width passes this test; read the module instead when that matters.

Lists: each item is either a ``(weight, bias)`` pair (a tuple, or a 2-item list whose
items have different shapes) or a bare array. Bare arrays are weights and biases in
order: an array of 2 to 5 dims is a weight, and a 1-d array right after a weight is its
bias. Lists give ``is_chain=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from sne_plugin.errors import SNEError, describe, short_repr
from sne_plugin.readers._common import Skipped, finish, make_layer, shape_of
from sne_plugin.readers._limits import check_zip_expansion
from sne_plugin.weights import (
    Layer,
    LayerKind,
    NetworkWeights,
    checked_array,
    checked_tensor,
    kind_for_ndim,
)

__all__ = ["read_sequence", "read_state_dict", "read_torch_file"]

_IGNORED = ("num_batches_tracked", "running_mean", "running_var")
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
_ATTENTION_KEYS = ("in_proj_weight", "q_proj_weight")


def read_state_dict(
    state: Mapping[Any, object], *, strict: bool = True, source: str = "<state_dict>"
) -> NetworkWeights:
    """The layers of a state dict, in its insertion order (see the module docstring).

    >>> import torch
    >>> net = read_state_dict({"fc.weight": torch.ones(3, 2), "fc.bias": torch.zeros(3)})
    >>> net.layers[0].name, net.layers[0].kind.value
    ('fc', 'dense')
    """
    groups = _group(state, source)
    attention = {
        prefix for prefix, entry in groups.items() if any(k in entry for k in _ATTENTION_KEYS)
    }
    layers: list[Layer] = []
    skipped = Skipped()
    for prefix, entry in groups.items():
        layers.extend(_read_group(prefix, entry, attention, skipped, source))
    chain = _looks_like_chain(layers)
    return finish(layers, skipped, source=source, strict=strict, is_chain=chain)


def _group(state: Mapping[object, object], source: str) -> dict[str, dict[str, object]]:
    groups: dict[str, dict[str, object]] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise SNEError(
                f"{source}: expected a state dict with str keys, got key {short_repr(key)}"
            )
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = value
    return groups


def _read_group(
    prefix: str, entry: dict[str, object], attention: set[str], skipped: Skipped, source: str
) -> list[Layer]:
    def full(leaf: str) -> str:
        return f"{prefix}.{leaf}" if prefix else leaf

    layers: list[Layer] = []
    used = set(_IGNORED)
    if "in_proj_weight" in entry:
        used |= {"in_proj_weight", "in_proj_bias"}
        layers.append(
            make_layer(
                LayerKind.ATTENTION,
                full("in_proj"),
                entry["in_proj_weight"],
                entry.get("in_proj_bias"),
                source=source,
            )
        )
    elif "q_proj_weight" in entry:
        layers.extend(_read_split_attention(prefix, entry, used, source))
    if "weight" in entry:
        used |= {"weight", "bias"}
        layers.append(_read_weight_bias(prefix or "<root>", entry, attention, source))
    for leaf in entry:
        if leaf not in used:
            skipped.add(
                full(leaf), f"unrecognised entry of shape {shape_of(_maybe_tensor(entry[leaf]))}"
            )
    return layers


def _read_split_attention(
    prefix: str, entry: dict[str, object], used: set[str], source: str
) -> list[Layer]:
    bias = entry.get("in_proj_bias")
    biases = (
        [None, None, None]
        if bias is None
        else list(_as_torch(bias, f"{source}, layer {prefix!r}", "bias").chunk(3))
    )
    layers = []
    for part, part_bias in zip(("q", "k", "v"), biases):
        key = f"{part}_proj_weight"
        used.add(key)
        layers.append(
            make_layer(
                LayerKind.ATTENTION,
                f"{prefix}.{part}_proj",
                entry.get(key),
                part_bias,
                source=source,
            )
        )
    used.add("in_proj_bias")
    return layers


def _read_weight_bias(
    name: str, entry: dict[str, object], attention: set[str], source: str
) -> Layer:
    weight = _as_torch(entry["weight"], f"{source}, layer {name!r}")
    parent, _, leaf = name.rpartition(".")
    if "running_mean" in entry or weight.dim() == 1:
        kind = LayerKind.NORM
    elif leaf == "out_proj" and parent in attention and weight.dim() == 2:
        kind = LayerKind.ATTENTION
    else:
        kind = kind_for_ndim(weight.dim(), where=f"{source}, layer {name!r}")
    return make_layer(kind, name, weight, entry.get("bias"), source=source)


def _maybe_tensor(value: object) -> torch.Tensor | None:
    return value if isinstance(value, torch.Tensor) else None


def _as_torch(value: object, where: str, what: str = "weight") -> torch.Tensor:
    """``value`` as a tensor of at least one dim, or an SNEError naming ``where``."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            raise SNEError(f"{where}: expected an array as {what}, got a 0-d scalar")
        return checked_tensor(value, where, what)
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise SNEError(
            f"{where}: expected a numeric array as {what}, got {describe(value)} ({exc})"
        ) from None
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise SNEError(
            f"{where}: expected a numeric array as {what}, "
            f"got {describe(value)} with dtype {array.dtype}"
        )
    if array.ndim == 0:
        raise SNEError(f"{where}: expected an array as {what}, got a 0-d scalar")
    return torch.from_numpy(np.ascontiguousarray(checked_array(array, where, what)))


def _looks_like_chain(layers: Sequence[Layer]) -> bool:
    producers = [layer for layer in layers if layer.kind is not LayerKind.NORM]
    if not layers or not _is_dense_or_conv(layers[0]):
        return False
    width = int(layers[0].weight.shape[0])
    for layer in layers[1:]:
        if layer.kind is LayerKind.NORM:
            if tuple(layer.weight.shape) != (width,):
                return False  # a norm of another width: not one layer's outputs
            continue
        if not _is_dense_or_conv(layer):
            return False
        inp = int(layer.weight.shape[1])
        conv_to_dense = producers[0].kind is not LayerKind.DENSE and layer.kind is LayerKind.DENSE
        if inp != width and not (conv_to_dense and inp % width == 0):
            return False
        producers = [layer]
        width = int(layer.weight.shape[0])
    return True


def _is_dense_or_conv(layer: Layer) -> bool:
    return layer.kind is LayerKind.DENSE or layer.kind.value.startswith("conv")


def read_sequence(items: Sequence[object], *, source: str = "<list>") -> NetworkWeights:
    """Layers from ``(weight, bias)`` pairs and/or bare arrays (see the module docstring).

    >>> import numpy as np
    >>> net = read_sequence([np.ones((4, 2)), np.zeros(4), np.ones((1, 4))])
    >>> [(layer.spec.weight_shape, layer.spec.bias_shape) for layer in net]
    [((4, 2), (4,)), ((1, 4), None)]
    """
    layers: list[Layer] = []
    pending: torch.Tensor | None = None
    for i, item in enumerate(items):
        name = f"layer{len(layers)}"
        if _is_pair(item):
            if pending is not None:
                layers.append(_bare_layer(f"layer{len(layers)}", pending, None, source))
                pending = None
                name = f"layer{len(layers)}"
            pair = tuple(cast("Sequence[object]", item))
            if len(pair) != 2:
                raise SNEError(
                    f"{source}, item {i}: expected a (weight, bias) pair, "
                    f"got a tuple of {len(pair)} items"
                )
            weight, bias = pair
            layers.append(
                _bare_layer(name, _as_torch(weight, f"{source}, layer {name!r}"), bias, source)
            )
            continue
        array = _as_torch(item, f"{source}, item {i}")
        if array.dim() >= 2:
            if pending is not None:
                layers.append(_bare_layer(f"layer{len(layers)}", pending, None, source))
            pending = array
        elif pending is None:
            raise SNEError(
                f"{source}, item {i}: expected a weight of 2 to 5 dims (a 1-d array is "
                f"read as the bias of the weight before it), got shape {tuple(array.shape)} "
                "with no weight before it; pass (weight, bias) pairs for norm layers"
            )
        else:
            layers.append(_bare_layer(name, pending, array, source))
            pending = None
    if pending is not None:
        layers.append(_bare_layer(f"layer{len(layers)}", pending, None, source))
    return finish(layers, Skipped(), source=source, strict=True, is_chain=True)


def _bare_layer(name: str, weight: torch.Tensor, bias: object | None, source: str) -> Layer:
    kind = kind_for_ndim(weight.dim(), where=f"{source}, layer {name!r}")
    return make_layer(kind, name, weight, bias, source=source)


def _is_pair(item: object) -> bool:
    if isinstance(item, tuple):
        return True
    if not isinstance(item, list) or len(item) != 2:
        return False
    if any(isinstance(part, (torch.Tensor, np.ndarray)) or part is None for part in item):
        return True
    try:
        return np.asarray(item).dtype == object
    except ValueError:  # ragged: a weight and a bias of different shapes
        return True


def read_torch_file(path: Path, *, strict: bool = True) -> NetworkWeights:
    """A torch checkpoint: a state dict, or a dict holding one under ``state_dict``,
    ``model_state_dict`` or ``model``, or a list of tensors. Loaded with ``weights_only=True``.

    >>> import tempfile, torch
    >>> path = Path(tempfile.mkdtemp()) / "w.pt"
    >>> torch.save({"state_dict": {"fc.weight": torch.ones(2, 3)}}, path)
    >>> read_torch_file(path).spec.layers[0].weight_shape
    (2, 3)
    """
    check_zip_expansion(path, "torch checkpoint")
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SNEError(
            f"{path}: expected a torch checkpoint readable with weights_only=True, "
            f"but loading failed: {text[:300]}"
        ) from None
    source = str(path)
    if isinstance(loaded, Mapping):
        for key in _CHECKPOINT_KEYS:
            if isinstance(loaded.get(key), Mapping):
                return read_state_dict(loaded[key], strict=strict, source=f"{source}[{key!r}]")
        return read_state_dict(loaded, strict=strict, source=source)
    if isinstance(loaded, (list, tuple)):
        return read_sequence(loaded, source=source)
    raise SNEError(
        f"{path}: expected a state dict or a list of tensors in the checkpoint, "
        f"got {describe(loaded)}"
    )
