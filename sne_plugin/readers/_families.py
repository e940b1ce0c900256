"""What the module and state-dict readers share about model families beyond plain layers.

* Bare parameters (a ``Parameter`` registered on a module that is not a layer): learned
  tokens, position tables, layer scales and relative-position bias tables, recognised by
  their names as the common libraries spell them (``cls_token``, ``pos_embed``,
  ``position_embeddings``, ``gamma``, ``layer_scale_parameter``,
  ``relative_position_bias_table``...). Each becomes a layer of its own kind, its weight
  flattened to ``(rows, last dim)`` (a scale to ``(channels,)``).
* Recurrent weights (``nn.LSTM``/``nn.GRU``/``nn.RNN`` and their cells): one layer per
  weight matrix, ``(gates * hidden, in)`` with its bias, named ``<module>.l<k>[_reverse].ih``
  / ``.hh`` (and ``.hr``, a dense layer, for an LSTM's projection ``proj_size``), in the order
  a forward pass uses them.
* Tied weights (one tensor reachable under two names): read once, where first met.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from sne_plugin.readers._common import make_layer
from sne_plugin.weights import Layer, LayerKind, checked_tensor

__all__ = [
    "BARE_KINDS",
    "TiedTensors",
    "bare_kind",
    "bare_layer",
    "is_recurrent_key",
    "recurrent_layers",
]

_BARE_NAMES: tuple[tuple[LayerKind, re.Pattern[str]], ...] = (
    (LayerKind.ATTENTION_BIAS, re.compile(r"(relative_position_bias_table|rel_pos_bias_table)")),
    (LayerKind.POSITION, re.compile(r"(absolute_)?pos(ition)?(al)?_?emb(ed|edding|eddings)?")),
    # tokens: cls/distillation/mask/register tokens, CLIP's class_embedding, wav2vec2's
    # masked_spec_embed
    (LayerKind.TOKEN, re.compile(r"[a-z_]*tokens?|(class|cls)_embedding|masked_spec_embed")),
    # layer scales, and CLIP's logit_scale (one learned scalar: a scale of one channel)
    (LayerKind.SCALE, re.compile(r"(gamma|lambda)(_?\d+)?|layer_scale(_parameter|_?\d+)?")),
    (LayerKind.SCALE, re.compile(r"logit_scale")),
)
BARE_KINDS = frozenset(
    {LayerKind.TOKEN, LayerKind.POSITION, LayerKind.SCALE, LayerKind.ATTENTION_BIAS}
)
"""The kinds of bare parameters."""
_GATE_KINDS = {4: LayerKind.LSTM, 3: LayerKind.GRU, 1: LayerKind.RNN}


def bare_kind(leaf: str, shape: tuple[int, ...]) -> LayerKind | None:
    """The kind of a bare parameter named ``leaf`` (the last part of its name) of ``shape``,
    or None.

    >>> bare_kind("cls_token", (1, 1, 8)).value, bare_kind("gamma", (8,)).value
    ('token', 'scale')
    >>> bare_kind("alpha", (8,)) is None
    True
    """
    for kind, pattern in _BARE_NAMES:
        if pattern.fullmatch(leaf):
            if len(shape) == 0 and leaf != "logit_scale":
                return None  # a scalar is a layer of its own only as CLIP's temperature
            if kind is LayerKind.SCALE and sum(n > 1 for n in shape) > 1:
                return None  # a "gamma" that is not per-channel: not a layer scale
            return kind
    return None


def bare_layer(kind: LayerKind, name: str, tensor: torch.Tensor, *, source: str) -> Layer:
    """A bare parameter as a layer of ``kind``: ``(channels,)`` for a scale, else
    ``(rows, last dim)``; the tensor is checked before it is reshaped."""
    tensor = checked_tensor(tensor, f"{source}, layer {name!r}")
    if tensor.dim() == 0:
        tensor = tensor.reshape(1)
    shape = (-1,) if kind is LayerKind.SCALE else (-1, int(tensor.shape[-1]))
    return make_layer(kind, name, tensor.reshape(shape), None, source=source)


def recurrent_layers(
    name: str,
    params: Mapping[str, torch.Tensor],
    *,
    source: str,
    kind: LayerKind | None = None,
) -> tuple[list[Layer], set[str]]:
    """The layers of a recurrent module's parameters ``params`` (keys as torch names them:
    ``weight_ih_l0``, ``bias_hh_l1_reverse``, or a cell's ``weight_ih``...), and the keys
    used. ``kind`` None: told by the gate count (rows of ``weight_hh`` over the hidden size).
    """
    layers: list[Layer] = []
    used: set[str] = set()
    for suffix, label in _recurrent_suffixes(params):
        ih, hh = params[f"weight_ih{suffix}"], params[f"weight_hh{suffix}"]
        hr = params.get(f"weight_hr{suffix}")
        this = kind or _gate_kind(hh, hr)
        if this is None:
            continue
        for part, weight in (("ih", ih), ("hh", hh), ("hr", hr)):
            if weight is None:
                continue
            bias = params.get(f"bias_{part}{suffix}") if part != "hr" else None
            layer_name = f"{name}.{label}.{part}" if label else f"{name}.{part}"
            part_kind = LayerKind.DENSE if part == "hr" else this  # a projection has no gates
            layers.append(make_layer(part_kind, layer_name, weight, bias, source=source))
            used |= {f"weight_{part}{suffix}", f"bias_{part}{suffix}"}
    return layers, used


def _recurrent_suffixes(params: Mapping[str, object]) -> list[tuple[str, str]]:
    """``(key suffix, layer label)`` of each weight set, layer by layer, forward first."""
    if "weight_ih" in params and "weight_hh" in params:
        return [("", "")]
    found = []
    for key in params:
        match = re.fullmatch(r"weight_ih_l(\d+)(_reverse)?", key)
        if match and f"weight_hh_l{match[1]}{match[2] or ''}" in params:
            found.append((int(match[1]), bool(match[2])))
    return [
        (f"_l{k}{'_reverse' if rev else ''}", f"l{k}{'_reverse' if rev else ''}")
        for k, rev in sorted(found)
    ]


def _gate_kind(hh: torch.Tensor, hr: torch.Tensor | None) -> LayerKind | None:
    if hh.dim() != 2:
        return None
    hidden = int(hr.shape[1]) if hr is not None and hr.dim() == 2 else int(hh.shape[1])
    rows = int(hh.shape[0])
    if hidden == 0 or rows % hidden:
        return None
    return _GATE_KINDS.get(rows // hidden)


def is_recurrent_key(leaf: str) -> bool:
    """Whether a state-dict leaf is one of torch's recurrent parameter names."""
    return re.fullmatch(r"(weight|bias)_(ih|hh|hr)(_l\d+(_reverse)?)?", leaf) is not None


@dataclass
class TiedTensors:
    """Tensors already read, by where their values live: a second name for the same
    values (an embedding tied to the output head) is read once."""

    seen: dict[tuple[object, ...], str] = field(default_factory=dict)

    def first(self, value: object, name: str) -> str | None:
        """The name ``value`` was first read under, or None (then ``name`` is recorded)."""
        key = _location(value)
        if key is None:
            return None
        if key in self.seen:
            return self.seen[key]
        self.seen[key] = name
        return None


def _location(value: object) -> tuple[object, ...] | None:
    if isinstance(value, torch.Tensor):
        if value.is_nested or value.layout != torch.strided or value.is_meta:
            return None
        if value.numel() == 0 or value.device.type == "meta":
            return None
        return ("torch", value.device, value.data_ptr(), value.dtype, value.shape, value.stride())
    if isinstance(value, np.ndarray) and value.size:
        address = value.__array_interface__["data"][0]
        return ("numpy", address, value.dtype.str, value.shape, value.strides)
    return None
