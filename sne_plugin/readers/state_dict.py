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
  weights: they are ignored, as are integer or boolean tensors other than a weight and its
  bias (index tables such as Swin's ``relative_position_index``, ``position_ids``, causal
  masks) and GPT-2's ``masked_bias``.
* Bare parameters (:mod:`._families`): ``X.cls_token``, ``X.pos_embed``,
  ``X.position_embeddings``, ``X.gamma`` (without a ``beta`` beside it: a layer scale),
  ``X.layer_scale_parameter``, ``X.relative_position_bias_table`` and their kin are layers
  of kinds ``token``, ``position``, ``scale`` and ``attention_bias`` (CLIP's 0-d
  ``logit_scale``: a scale of one channel).
* Weight-normed weights (``X.parametrizations.weight.original0``/``original1``, or the older
  ``X.weight_g``/``X.weight_v``) are folded into the weight ``X.weight = g * v / ||v||``
  they stand for, as the module reader reads it.
* Recurrent weights (``X.weight_ih_l0``, ``X.weight_hh_l0_reverse``, ``X.bias_ih_l0``...)
  give one layer per matrix; the kind (lstm, gru, rnn) follows from the gate count.
* Hugging Face ``Conv1D`` weights (GPT-2: stored ``(in, out)``) are transposed to a dense
  layer's ``(out, in)``: a 2-d weight whose bias has the length of its second dim, not its
  first, is one; then every layer of the same leaf name is read that way too (GPT-2's
  square attention ``c_proj`` beside its MLP's ``c_proj``).
* Tied weights (two keys holding one tensor, sharing storage) are read once, where first
  met; ``meta["tied"]`` lists the others.
* Any other key is unreadable (strict: an error).
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
from sne_plugin.readers._families import (
    TiedTensors,
    bare_kind,
    bare_layer,
    is_recurrent_key,
    recurrent_layers,
)
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

_IGNORED = ("num_batches_tracked", "running_mean", "running_var", "masked_bias")
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
    state, tied = _untied(state)
    state = _folded_weight_norms(state, source)
    groups = _group(state, source)
    attention = {
        prefix for prefix, entry in groups.items() if any(k in entry for k in _ATTENTION_KEYS)
    }
    transposed = _conv1d_leaves(groups)
    layers: list[Layer] = []
    skipped = Skipped()
    for prefix, entry in groups.items():
        layers.extend(_read_group(prefix, entry, attention, transposed, skipped, source))
    chain = _looks_like_chain(layers)
    meta: dict[str, object] | None = {"tied": tied} if tied else None
    return finish(layers, skipped, source=source, strict=strict, is_chain=chain, meta=meta)


def _untied(state: Mapping[Any, object]) -> tuple[dict[Any, object], list[str]]:
    """``state`` without the keys whose tensor is one met before (tied weights)."""
    seen = TiedTensors()
    kept: dict[Any, object] = {}
    tied: list[str] = []
    for key, value in state.items():
        if not isinstance(key, str) or seen.first(value, key) is None:
            kept[key] = value
        else:
            tied.append(str(key))
    return kept, tied


_WEIGHT_NORM = (
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
    (".weight_g", ".weight_v"),
)


def _folded_weight_norms(state: dict[Any, object], source: str) -> dict[Any, object]:
    """``state`` with each weight-normed weight (``X.parametrizations.weight.original0/1``
    of ``torch.nn.utils.parametrizations.weight_norm``, or the older ``X.weight_g`` and
    ``X.weight_v``) replaced by the weight ``X.weight`` it stands for, ``g * v / ||v||``, as
    the module reader reads it; any other key is kept, in order."""
    out: dict[Any, object] = {}
    for key, value in state.items():
        pair = _weight_norm_pair(key, state)
        if pair is None:
            out[key] = value
        elif pair[0] == key:
            g, v = (_as_torch(state[k], f"{source}, {k!r}") for k in pair)
            out[f"{key[: -len(_suffix(key))]}.weight"] = _weight_from_norm(g, v, source, key)
    return out


def _suffix(key: str) -> str:
    return next(g for g, _ in _WEIGHT_NORM if key.endswith(g))


def _weight_norm_pair(key: object, state: Mapping[Any, object]) -> tuple[str, str] | None:
    """``(g key, v key)`` when ``key`` is either half of a weight-norm pair in ``state``."""
    if not isinstance(key, str):
        return None
    for g, v in _WEIGHT_NORM:
        for mine, other, first in ((g, v, True), (v, g, False)):
            if key.endswith(mine):
                twin = key[: -len(mine)] + other
                if twin in state:
                    return (key, twin) if first else (twin, key)
    return None


def _weight_from_norm(g: torch.Tensor, v: torch.Tensor, source: str, key: str) -> torch.Tensor:
    """``g * v / ||v||``, the norm over every dim of ``v`` but the one ``g`` keeps."""
    kept = [d for d in range(v.dim()) if g.dim() == v.dim() and g.shape[d] == v.shape[d] > 1]
    if g.dim() != v.dim() or len(kept) > 1 or (not kept and g.numel() != 1):
        raise SNEError(
            f"{source}, {key!r}: expected a weight norm's magnitude with one dim of the "
            f"direction's shape {tuple(v.shape)}, got shape {tuple(g.shape)}"
        )
    return torch._weight_norm(v.float(), g.float(), kept[0] if kept else -1)


def _conv1d_leaves(groups: dict[str, dict[str, object]]) -> set[str]:
    """Leaf names of layers stored as Hugging Face ``Conv1D`` (``(in, out)``): those of the
    layers whose bias shows it (GPT-2's ``c_attn``, ``c_fc`` and its MLP's ``c_proj``)."""
    found: set[str] = set()
    for prefix, entry in groups.items():
        weight, bias = entry.get("weight"), entry.get("bias")
        w_shape, b_shape = _shape(weight), _shape(bias)
        if len(w_shape) == 2 and len(b_shape) == 1 and b_shape[0] == w_shape[1] != w_shape[0]:
            found.add(prefix.rpartition(".")[2])
    return found


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
    prefix: str,
    entry: dict[str, object],
    attention: set[str],
    transposed: set[str],
    skipped: Skipped,
    source: str,
) -> list[Layer]:
    def full(leaf: str) -> str:
        return f"{prefix}.{leaf}" if prefix else leaf

    layers: list[Layer] = []
    used = set(_IGNORED) | _buffers(entry)
    recurrent = {leaf: v for leaf, v in entry.items() if is_recurrent_key(leaf)}
    if recurrent:
        tensors = {k: _as_torch(v, f"{source}, layer {full(k)!r}") for k, v in recurrent.items()}
        found, taken = recurrent_layers(prefix or "<root>", tensors, source=source)
        layers.extend(found)
        used |= taken
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
        conv1d = prefix.rpartition(".")[2] in transposed
        layers.append(_read_weight_bias(prefix or "<root>", entry, attention, conv1d, source))
    elif "gamma" in entry and "beta" in entry:  # a norm in TensorFlow's names
        used |= {"gamma", "beta"}
        norm = {"weight": entry["gamma"], "bias": entry["beta"]}
        layers.append(_read_weight_bias(prefix or "<root>", norm, attention, False, source))
    for leaf, value in entry.items():
        kind = None if leaf in used else bare_kind(leaf, _shape(value))
        if kind is not None:
            used.add(leaf)
            if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
                value = value.reshape(1)  # CLIP's logit_scale: one learned scalar
            tensor = _as_torch(value, f"{source}, layer {full(leaf)!r}")
            layers.append(bare_layer(kind, full(leaf), tensor, source=source))
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


def _shape(value: object) -> tuple[int, ...]:
    """The shape of a tensor or array; ``()`` for anything else."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and not getattr(value, "is_nested", False):
        return tuple(int(n) for n in value.shape)
    return ()


def _buffers(entry: dict[str, object]) -> set[str]:
    """Leaves that are buffers, not weights: integer or boolean tensors other than a
    weight (and its bias), such as index tables, position ids and causal masks."""
    weights = {"weight", "bias"} if "weight" in entry else set()
    return {
        leaf
        for leaf, value in entry.items()
        if leaf not in weights and _dtype_kind(value) in ("i", "u", "b")
    }


def _dtype_kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            return "b"
        return "f" if value.is_floating_point() or value.is_complex() else "i"
    if isinstance(value, np.ndarray):
        return value.dtype.kind
    return ""


def _read_weight_bias(
    name: str, entry: dict[str, object], attention: set[str], conv1d: bool, source: str
) -> Layer:
    weight = _as_torch(entry["weight"], f"{source}, layer {name!r}")
    if conv1d and weight.dim() == 2:
        weight = weight.t()  # Hugging Face Conv1D: (in, out) -> a dense layer's (out, in)
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
