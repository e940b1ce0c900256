"""From network shapes to index tensors: how a batch of networks is padded, chunked and pooled.

Everything here depends on shapes only (:class:`~sne_plugin.weights.NetworkSpec`), so it is
computed once per architecture (cached) and, per minibatch, stitched together with offsets
in numpy. The encoder's forward pass then runs on whole index tensors: no Python loop over
layers or chunks.

Elements. Parameters are read from a network's flat vector (weights then bias, layer by
layer, as :meth:`NetworkWeights.flatten`). A dense weight ``(out, in)`` gives ``out * in``
scalar elements, row-major, so one neuron's fan-in is contiguous; a convolution
``(out, in, *k)`` gives ``out * in`` kernel elements of ``prod(k)`` values each (kernels are
never split); biases, norms, embeddings and attention projections give scalar elements.
Elements with the same kernel shape form a *group* and are lifted together.

Chunks. Each tensor's elements are zero-padded to a multiple of ``chunk_size`` and cut into
chunks; a mask marks the padding.

Chunk sets. The chunks of one tensor form a set. Decision (the paper leaves this open): a
set of more than ``max_set`` chunks is pooled hierarchically, ``max_set`` at a time, by the
same chunk-set encoder, until one vector per tensor remains. Small networks never reach
this; very large layers then cost memory in proportion to ``max_set``, not to their size.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sne_plugin.weights import LayerKind, NetworkSpec

__all__ = ["Batch", "ChunkGroup", "Pass", "SpecPlan", "make_batch", "spec_plan", "type_id"]

_KINDS = list(LayerKind)
N_TYPES = 2 * len(_KINDS)


def type_id(kind: LayerKind, is_bias: bool) -> int:
    """The index of (layer kind, weight or bias) in the type embedding."""
    return 2 * _KINDS.index(kind) + int(is_bias)


@dataclass(frozen=True)
class SpecPlan:
    """Shape-only indexing of one architecture (cached per ``NetworkSpec`` and chunk size).

    A chunk's values are contiguous in the flat vector (elements of a tensor are, and
    padding only ever ends a tensor), so a chunk is fully described by where it starts,
    how many real elements it holds, and its group's kernel shape.

    Examples
    --------
    A dense layer of 4 x 10 weights and 4 biases, in chunks of 8 elements:

    >>> from sne_plugin.weights import LayerSpec
    >>> spec = NetworkSpec((LayerSpec(LayerKind.DENSE, "fc", (4, 10), (4,)),))
    >>> plan = spec_plan(spec, chunk_size=8)
    >>> plan.num_chunks, plan.chunk_valid.tolist(), plan.chunk_start.tolist()
    (6, [8, 8, 8, 8, 8, 4], [0, 8, 16, 24, 32, 40])
    """

    num_params: int
    group_keys: tuple[tuple[int, ...], ...]  # kernel shapes, () for scalars
    chunk_group: np.ndarray  # (q,) index into group_keys
    chunk_start: np.ndarray  # (q,) flat offset of the chunk's first value
    chunk_valid: np.ndarray  # (q,) real elements in the chunk (the rest is padding)
    chunk_tensor: np.ndarray  # (q,) local tensor id
    chunk_pos: np.ndarray  # (q,) index of the chunk within its tensor
    tensor_type: np.ndarray  # (t,) type_id
    tensor_layer: np.ndarray  # (t,) local layer id
    tensor_is_bias: np.ndarray  # (t,) bool
    tensor_size: np.ndarray  # (t,) parameters in the tensor (tensors tile the flat vector)
    n_layers: int

    @property
    def num_chunks(self) -> int:
        return len(self.chunk_tensor)


@functools.lru_cache(maxsize=1024)
def spec_plan(spec: NetworkSpec, chunk_size: int) -> SpecPlan:
    """The plan of one architecture."""
    tensors = _tensor_table(spec)
    keys = tuple(sorted({t[3] for t in tensors}, key=lambda k: (len(k), k)))
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("group", "start", "valid", "tensor", "pos")
    }
    for tid, (offset, n_elem, ksize, kshape, *_rest) in enumerate(tensors):
        q = math.ceil(n_elem / chunk_size)
        pos = np.arange(q, dtype=np.int64)
        cols["group"].append(np.full(q, keys.index(kshape), np.int64))
        cols["start"].append(offset + pos * chunk_size * ksize)
        cols["valid"].append(np.minimum(chunk_size, n_elem - pos * chunk_size))
        cols["tensor"].append(np.full(q, tid, np.int64))
        cols["pos"].append(pos)
    cat = {k: np.concatenate(v).astype(np.int64) for k, v in cols.items()}
    return SpecPlan(
        num_params=spec.num_params,
        group_keys=keys,
        chunk_group=cat["group"],
        chunk_start=cat["start"],
        chunk_valid=cat["valid"],
        chunk_tensor=cat["tensor"],
        chunk_pos=cat["pos"],
        tensor_type=np.array([t[4] for t in tensors], np.int64),
        tensor_layer=np.array([t[5] for t in tensors], np.int64),
        tensor_is_bias=np.array([t[6] for t in tensors], bool),
        tensor_size=np.array([t[1] * t[2] for t in tensors], np.int64),
        n_layers=len(spec.layers),
    )


def _tensor_table(spec: NetworkSpec) -> list[tuple[int, int, int, tuple[int, ...], int, int, bool]]:
    """Per tensor: (flat offset, n elements, kernel size, kernel shape, type, layer, is_bias)."""
    rows = []
    offset = 0
    for lid, layer in enumerate(spec.layers):
        shape = layer.weight_shape
        kshape = tuple(shape[2:]) if layer.kind.kernel_dims else ()
        ksize = math.prod(kshape)
        rows.append(
            (
                offset,
                math.prod(shape) // ksize,
                ksize,
                kshape,
                type_id(layer.kind, False),
                lid,
                False,
            )
        )
        offset += math.prod(shape)
        if layer.bias_shape is not None:
            nb = math.prod(layer.bias_shape)
            rows.append((offset, nb, 1, (), type_id(layer.kind, True), lid, True))
            offset += nb
    return rows


@dataclass
class ChunkGroup:
    """The chunks of one kernel shape in a batch.

    Examples
    --------
    >>> from sne_plugin.weights import LayerSpec
    >>> conv = LayerSpec(LayerKind.CONV2D, "conv", (2, 3, 3, 3), None)  # 6 kernels of 3x3
    >>> batch = make_batch([NetworkSpec((conv,))], chunk_size=4, max_set=64)
    >>> [(group.kernel_shape, group.valid.tolist()) for group in batch.groups]
    [((3, 3), [4, 2])]
    >>> batch.groups[0].part(1, 2).start.tolist()  # the second chunk starts at kernel 4
    [36]
    """

    kernel_shape: tuple[int, ...]
    start: torch.Tensor  # (Q_g,) flat offset in the batch vector
    valid: torch.Tensor  # (Q_g,)
    chunk_id: torch.Tensor  # (Q_g,) position in the batch's chunk order

    def part(self, lo: int, hi: int) -> ChunkGroup:
        """The group's chunks ``lo:hi``."""
        return ChunkGroup(
            self.kernel_shape, self.start[lo:hi], self.valid[lo:hi], self.chunk_id[lo:hi]
        )


@dataclass(frozen=True)
class Pass:
    """One streaming pass: consecutive first-level chunk sets ``[set_lo, set_hi)``, covering
    chunks ``[chunk_lo, chunk_hi)``, and each group's slice ``(group, lo, hi)`` of them.

    Examples
    --------
    Two networks of one dense layer each: four tensors, four chunk sets of 5, 1, 5 and 1
    chunks; passes of at most 6 chunks take two sets each.

    >>> from sne_plugin.weights import LayerSpec
    >>> spec = NetworkSpec((LayerSpec(LayerKind.DENSE, "fc", (4, 10), (4,)),))
    >>> for p in make_batch([spec, spec], chunk_size=8, max_set=64).passes(6):
    ...     print(p)
    Pass(set_lo=0, set_hi=2, chunk_lo=0, chunk_hi=6, slices=((0, 0, 6),), width=5)
    Pass(set_lo=2, set_hi=4, chunk_lo=6, chunk_hi=12, slices=((0, 6, 12),), width=5)
    """

    set_lo: int
    set_hi: int
    chunk_lo: int
    chunk_hi: int
    slices: tuple[tuple[int, int, int], ...]
    width: int  # the largest set of the pass


@dataclass
class Batch:
    """Index tensors for one minibatch of networks (see the module docstring).

    Examples
    --------
    >>> from sne_plugin.weights import LayerSpec
    >>> spec = NetworkSpec((LayerSpec(LayerKind.DENSE, "fc", (4, 10), (4,)),))
    >>> batch = make_batch([spec, spec], chunk_size=8, max_set=64)
    >>> batch.n_networks, batch.n_params, batch.n_tensors, batch.n_chunks
    (2, 88, 4, 12)
    >>> batch.net_pack.tolist()  # each network's layers
    [[0], [1]]
    """

    n_networks: int
    n_params: int
    groups: list[ChunkGroup]
    chunk_type: torch.Tensor  # (Q,)
    chunk_depth: torch.Tensor  # (Q,)
    chunk_pos: torch.Tensor  # (Q,)
    set_levels: list[SetLevel]  # per level: (S, L) pack, (S,) depth, (S,) final, final ids
    layer_pack: torch.Tensor  # (n_layers, 2): weight tensor id, bias tensor id or -1
    net_pack: torch.Tensor  # (B, L_max) layer ids or -1
    net_depth: torch.Tensor  # (B, L_max)
    n_tensors: int
    tensor_size: torch.Tensor  # (T,) the tensors' lengths in the flat batch vector, in order
    # Host-side (numpy) bookkeeping for streaming; it stays on the CPU in ``to()``.
    set_bounds: np.ndarray  # (S1 + 1,) first chunk of each first-level set, then Q
    group_chunk_ids: list[np.ndarray]  # per group, its chunk ids (ascending)

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_type)

    def passes(self, max_chunks: int) -> list[Pass]:
        """Whole first-level chunk sets, grouped into passes of at most ``max_chunks`` chunks
        (or one set, if a set is larger). A pass never splits a set, so a set is pooled
        within the pass that encodes its chunks, and the chunk vectors need not outlive it."""
        bounds = self.set_bounds
        out, lo, n_sets = [], 0, len(bounds) - 1
        while lo < n_sets:
            hi = int(np.searchsorted(bounds, bounds[lo] + max_chunks, side="right")) - 1
            hi = min(max(hi, lo + 1), n_sets)
            c_lo, c_hi = int(bounds[lo]), int(bounds[hi])
            slices = []
            for g, ids in enumerate(self.group_chunk_ids):
                a, b = (int(i) for i in np.searchsorted(ids, [c_lo, c_hi]))
                if b > a:
                    slices.append((g, a, b))
            width = int(np.diff(bounds[lo : hi + 1]).max())
            out.append(Pass(lo, hi, c_lo, c_hi, tuple(slices), width))
            lo = hi
        return out

    def to(self, device: torch.device) -> Batch:
        """The batch with every index tensor on ``device`` (numpy bookkeeping stays put)."""
        moved: Batch = _moved(self, device)
        return moved


def _moved(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it on ``device``, through lists and dataclass fields;
    anything else (ints, shapes, numpy arrays, None) is kept as it is."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, list):
        return [_moved(v, device) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        return dataclasses.replace(value, **{n: _moved(getattr(value, n), device) for n in names})
    return value


def make_batch(specs: Sequence[NetworkSpec], chunk_size: int, max_set: int) -> Batch:
    """Stitch the plans of ``specs`` into one batch. The parameters of network ``i`` start at
    ``sum(num_params[:i])`` in the flat batch vector (networks' flat vectors concatenated)."""
    plans = [spec_plan(s, chunk_size) for s in specs]
    p_off = np.cumsum([0] + [p.num_params for p in plans])
    t_off = np.cumsum([0] + [len(p.tensor_type) for p in plans])
    l_off = np.cumsum([0] + [p.n_layers for p in plans])
    keys = sorted({k for p in plans for k in p.group_keys}, key=lambda k: (len(k), k))
    to_batch_key = [np.array([keys.index(k) for k in p.group_keys], np.int64) for p in plans]
    chunk_key = np.concatenate([to_batch_key[i][p.chunk_group] for i, p in enumerate(plans)])
    start = np.concatenate([p.chunk_start + p_off[i] for i, p in enumerate(plans)])
    valid = np.concatenate([p.chunk_valid for p in plans])
    chunk_tensor = np.concatenate([p.chunk_tensor + t_off[i] for i, p in enumerate(plans)])
    tensor_type = np.concatenate([p.tensor_type for p in plans])
    tensor_layer = np.concatenate([p.tensor_layer + l_off[i] for i, p in enumerate(plans)])
    tensor_bias = np.concatenate([p.tensor_is_bias for p in plans])
    layer_depth = np.concatenate([np.arange(p.n_layers) for p in plans])
    tensor_depth = layer_depth[tensor_layer]
    net_pack, net_depth = _net_pack(plans, l_off)
    t = torch.from_numpy
    groups, group_ids = [], []
    for g, key in enumerate(keys):
        ids = np.flatnonzero(chunk_key == g)
        groups.append(ChunkGroup(key, t(start[ids]), t(valid[ids]), t(ids)))
        group_ids.append(ids)
    levels = _set_levels(chunk_tensor, len(tensor_type), max_set)
    set_sizes = (levels[0].pack >= 0).sum(axis=1) if levels else np.zeros(0, np.int64)
    return Batch(
        n_networks=len(specs),
        n_params=int(p_off[-1]),
        groups=groups,
        chunk_type=t(tensor_type[chunk_tensor]),
        chunk_depth=t(tensor_depth[chunk_tensor]),
        chunk_pos=t(np.concatenate([p.chunk_pos for p in plans])),
        set_levels=[
            SetLevel(t(lv.pack), t(tensor_depth[lv.owner]), t(lv.final), t(lv.owner[lv.final]))
            for lv in levels
        ],
        n_tensors=len(tensor_type),
        tensor_size=t(np.concatenate([p.tensor_size for p in plans])),
        layer_pack=t(_layer_pack(tensor_layer, tensor_bias, int(l_off[-1]))),
        net_pack=t(net_pack),
        net_depth=t(net_depth),
        set_bounds=np.concatenate([[0], np.cumsum(set_sizes)]).astype(np.int64),
        group_chunk_ids=group_ids,
    )


def _pack(segment: np.ndarray, n_segments: int) -> np.ndarray:
    """Items sorted by segment -> (n_segments, max count) item indices, -1 padded."""
    counts = np.bincount(segment, minlength=n_segments)
    width = int(counts.max(initial=1))
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(segment)) - starts[segment]
    out = np.full((n_segments, width), -1, np.int64)
    out[segment, pos] = np.arange(len(segment))
    return out


def _set_levels(chunk_tensor: np.ndarray, n_tensors: int, max_set: int) -> list[SetLevel]:
    """Hierarchical pooling of chunk sets. At each level a tensor with at most ``max_set``
    items is pooled into its final vector; a larger one is split into sets of ``max_set``
    whose pooled vectors are its items at the next level. How often a tensor is pooled
    depends on its own size only, never on the other networks in the batch."""
    levels = []
    owner = chunk_tensor  # tensor id of each item at this level (sorted)
    while len(owner):
        counts = np.bincount(owner, minlength=n_tensors)
        big = counts > max_set
        n_sets = np.where(big, -(-counts // max_set), (counts > 0).astype(np.int64))
        starts = np.cumsum(counts) - counts
        sub = (np.arange(len(owner)) - starts[owner]) // max_set  # set within the tensor
        segment = (np.cumsum(n_sets) - n_sets)[owner] + sub
        set_owner = np.repeat(np.arange(n_tensors), n_sets)
        final = ~big[set_owner]
        levels.append(SetLevel(_pack(segment, int(n_sets.sum())), set_owner, final))
        owner = set_owner[~final]
    return levels


@dataclass
class SetLevel:
    """One level of chunk-set pooling (numpy before :func:`make_batch`, torch after)."""

    pack: Any  # (S, L) item indices, -1 padded
    owner: Any  # (S,) tensor id of each set (its depth, once in a Batch)
    final: Any  # (S,) True where the set's vector is its tensor's final vector
    final_ids: Any = None  # tensor ids of the final sets, in order


def _layer_pack(tensor_layer: np.ndarray, tensor_is_bias: np.ndarray, n_layers: int) -> np.ndarray:
    out = np.full((n_layers, 2), -1, np.int64)
    tids = np.arange(len(tensor_layer))
    out[tensor_layer[~tensor_is_bias], 0] = tids[~tensor_is_bias]
    out[tensor_layer[tensor_is_bias], 1] = tids[tensor_is_bias]
    return out


def _net_pack(plans: Sequence[SpecPlan], l_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = max(p.n_layers for p in plans)
    pack = np.full((len(plans), width), -1, np.int64)
    depth = np.zeros((len(plans), width), np.int64)
    for i, p in enumerate(plans):
        pack[i, : p.n_layers] = l_off[i] + np.arange(p.n_layers)
        depth[i, : p.n_layers] = np.arange(p.n_layers)
    return pack, depth
