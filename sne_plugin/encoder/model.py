"""The SNE encoder: pad, chunk, encode by set functions, layer by layer, into one vector.

Per tensor: chunk encoder (lift, SAB x2, + type/depth/chunk-index encodings, SAB x2, PMA),
then the chunk-set encoder (SAB x2, + depth encoding, PMA); per layer, the weight and bias
vectors are merged (SAB x2, PMA); per network, the layer vectors plus their depth encoding
(SAB x2, PMA) give the embedding. A small MLP head maps it to the prediction.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from sne_plugin.encoder.blocks import PMA, SetStack
from sne_plugin.encoder.plan import N_TYPES, Batch, ChunkGroup, Pass

__all__ = ["KernelLift", "SNEEncoder", "SNENet", "sinusoid"]


def sinusoid(position: torch.Tensor, dim: int) -> torch.Tensor:
    """Vaswani-style sinusoidal encoding of integer positions: (...,) -> (..., dim).

    Positions are small integers (depths, chunk indices), so the encodings are read from a
    table per ``(dim, device)``, grown on demand (no gradient flows into them).
    """
    if position.numel() == 0:
        return torch.zeros(*position.shape, dim, device=position.device)
    need = int(position.max()) + 1
    key = (dim, position.device)
    table = _SINUSOIDS.get(key)
    if table is None or table.shape[0] < need or int(position.min()) < 0:
        if int(position.min()) < 0:  # not a table lookup: compute directly
            return _sinusoid(position, dim)
        table = _sinusoid(torch.arange(max(need, 64), device=position.device), dim)
        _SINUSOIDS[key] = table
    return table[position]


_SINUSOIDS: dict[tuple[int, torch.device], torch.Tensor] = {}


def _sinusoid(position: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, device=position.device) / half)
    angle = position.to(torch.float32)[..., None] * freq
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


class KernelLift(nn.Module):
    """Lift an element (a scalar, or a whole kernel of any shape) to ``width`` dims.

    Decision (the paper leaves kernel lifting open): an element of ``K`` values is mapped
    linearly by a ``(K, width)`` matrix whose rows are *generated* from each value's
    position in the kernel (normalised coordinates along up to three axes, the number of
    axes and log K) by a small MLP, then passed through a residual GELU layer. So one set
    of weights lifts 1x1, 3x3, 7x7, 1-D and 3-D kernels and scalars alike, and kernels of
    a size never seen in training still get a sensible lift. The absolute values get a
    second generated matrix: magnitudes then reach the set pooling directly instead of
    averaging out as random signs do (measured: without it, embeddings of different
    networks start nearly identical and training takes several epochs to separate them).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> lift = KernelLift(width=8)
    >>> lift(torch.randn(5, 9), (3, 3)).shape  # five 3x3 kernels, flattened
    torch.Size([5, 8])
    >>> lift(torch.randn(5, 1), ()).shape  # five scalars, through the same weights
    torch.Size([5, 8])
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.coord_mlp = nn.Sequential(nn.Linear(6, width), nn.GELU(), nn.Linear(width, 2 * width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.proj = nn.Sequential(nn.GELU(), nn.Linear(width, width))

    @staticmethod
    def coordinates(kernel_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """(K, 6) features of each position of a kernel: 3 coordinates, axes, log K, 1."""
        axes = [
            torch.linspace(-1, 1, n, device=device) if n > 1 else torch.zeros(1, device=device)
            for n in kernel_shape
        ]
        grid = (
            torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
            if axes
            else torch.zeros(1, 0, device=device)
        )
        k = grid.shape[0]
        pad = torch.zeros(k, 3 - grid.shape[1], device=device)
        extra = torch.tensor([len(kernel_shape) / 3, math.log(k) / 4, 1.0], device=device).expand(
            k, 3
        )
        return torch.cat([grid, pad, extra], dim=1)

    def matrix(self, kernel_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """The ``(K, 2 * width)`` lifting matrices of a kernel shape. Without gradients (at
        inference) they are cached per shape and device until the MLP's weights change."""
        if torch.is_grad_enabled():
            return self._matrix(kernel_shape, device)
        versions = tuple((p.data_ptr(), p._version) for p in self.coord_mlp.parameters())
        cache = self.__dict__.setdefault("_matrices", {})  # (absent in older pickles)
        key = (kernel_shape, device)
        hit = cache.get(key)
        if hit is None or hit[0] != versions:
            hit = (versions, self._matrix(kernel_shape, device))
            cache[key] = hit
        return hit[1]

    def __getstate__(self) -> dict[str, object]:
        state = dict(super().__getstate__())
        state.pop("_matrices", None)  # a cache: never pickled
        return state

    def _matrix(self, kernel_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        coords = self.coordinates(kernel_shape, device)
        return self.coord_mlp(coords) / math.sqrt(coords.shape[0])

    def forward(self, values: torch.Tensor, kernel_shape: tuple[int, ...]) -> torch.Tensor:
        signed, magnitude = (
            self.matrix(kernel_shape, values.device).to(values.dtype).chunk(2, dim=1)
        )
        z = values @ signed + values.abs() @ magnitude + self.bias.to(values.dtype)
        return z + self.proj(z)


class SNEEncoder(nn.Module):
    """Networks of any architecture -> embeddings of dimension ``width``.

    ``chunk_position``: decision (open in the paper): chunks get a sinusoidal encoding of
    their index within the tensor, so swapping two chunks of a layer changes the encoding.
    Encodings are *added* to the element features (the alternative, concatenation, costs
    width; see BENCHMARKS.md for the measured comparison when one was run).

    Examples
    --------
    An MLP and a CNN in one batch: their flat parameter vectors, concatenated, and the batch's
    index tensors (:func:`~sne_plugin.encoder.make_batch`) give one embedding each.

    >>> from sne_plugin import NetworkWeights
    >>> from sne_plugin.encoder import make_batch
    >>> g = torch.Generator().manual_seed(0)
    >>> mlp = NetworkWeights.from_pairs([(torch.randn(8, 4, generator=g), torch.zeros(8)),
    ...                                  (torch.randn(2, 8, generator=g), None)])
    >>> cnn = NetworkWeights.from_pairs([(torch.randn(6, 1, 3, 3, generator=g), None)])
    >>> batch = make_batch([mlp.spec, cnn.spec], chunk_size=16, max_set=64)
    >>> flat = torch.cat([torch.from_numpy(net.flatten()) for net in (mlp, cnn)])
    >>> _ = torch.manual_seed(0)
    >>> encoder = SNEEncoder(width=32, heads=4, chunk_size=16, max_set=64)
    >>> encoder(batch, flat).shape
    torch.Size([2, 32])
    """

    def __init__(
        self,
        width: int = 64,
        heads: int = 4,
        chunk_size: int = 32,
        max_set: int = 256,
        chunk_position: bool = True,
        max_chunks_per_pass: int = 8192,
        tensor_stats: bool = True,
        chunk_depth: int = 2,
    ) -> None:
        super().__init__()
        self.width, self.chunk_size, self.max_set = width, chunk_size, max_set
        self.chunk_position = chunk_position
        self.max_chunks_per_pass = max_chunks_per_pass
        self.lift = KernelLift(width)
        self.type_embedding = nn.Embedding(N_TYPES, width)
        self.chunk_sab1 = SetStack(width, heads, depth=chunk_depth)
        self.chunk_sab2 = SetStack(width, heads, depth=chunk_depth)
        self.chunk_pma = PMA(width, heads)
        self.set_sab = SetStack(width, heads)
        self.set_pma = PMA(width, heads)
        self.layer_sab = SetStack(width, heads)
        self.layer_pma = PMA(width, heads)
        self.net_sab = SetStack(width, heads)
        self.net_pma = PMA(width, heads)
        self.stats_mlp = (
            nn.Sequential(nn.Linear(len(SUMMARY_NAMES), width), nn.GELU(), nn.Linear(width, width))
            if tensor_stats
            else None
        )

    def forward(self, batch: Batch, flat: torch.Tensor) -> torch.Tensor:
        """``flat``: the batch's networks' flat parameter vectors, concatenated -> (B, width)."""
        tensors = self.encode_tensors(batch, flat)
        if self.stats_mlp is not None:
            stats = tensor_summaries(flat, batch.tensor_size)
            tensors = tensors + self.stats_mlp(stats.to(tensors.dtype))
        layers = self._pool(tensors, batch.layer_pack, self.layer_sab, self.layer_pma)
        packed, mask = _gather_pack(layers, batch.net_pack)
        packed = packed + sinusoid(batch.net_depth, self.width).to(packed.dtype)
        return self.net_pma(self.net_sab(packed, mask), mask)

    def encode_tensors(self, batch: Batch, flat: torch.Tensor) -> torch.Tensor:
        """(T, width): one vector per tensor.

        Streamed: each pass encodes the chunks of whole first-level chunk sets (at most
        ``max_chunks_per_pass`` chunks) and pools those sets at once, so chunk vectors live
        for one pass only; what outlives a pass is one vector per set of up to ``max_set``
        chunks. The working memory beyond the weights is then bounded by the pass size (plus
        ``1 / (chunk_size * max_set)`` of the parameter count for the set vectors). Sets of
        sets (tensors of more than ``max_set`` chunks) are pooled further level by level.
        """
        passes = batch.passes(self.max_chunks_per_pass)
        pooled = [self._set_pass(p, flat, batch, len(passes) > 1) for p in passes]
        items = pooled[0] if len(pooled) == 1 else torch.cat(pooled)
        out = items.new_zeros(batch.n_tensors, self.width)
        for depth, level in enumerate(batch.set_levels):
            if depth:
                packed, mask = _gather_pack(items, level.pack)
                items = self._pool_sets(packed, mask, level.owner)
            out = out.index_copy(0, level.final_ids, items[level.final])
            items = items[~level.final]
        return out

    def _set_pass(self, p: Pass, flat: torch.Tensor, batch: Batch, streamed: bool) -> torch.Tensor:
        if streamed and self.training and torch.is_grad_enabled():
            # Bounded memory when training on very large networks: recompute in backward.
            out: torch.Tensor = checkpoint(self._set_forward, p, flat, batch, use_reentrant=False)
            return out
        return self._set_forward(p, flat, batch)

    def _set_forward(self, p: Pass, flat: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The pooled vectors of the first-level sets of one pass, (set_hi - set_lo, width)."""
        parts = [batch.groups[group].part(lo, hi) for group, lo, hi in p.slices]
        ids = parts[0].chunk_id if len(parts) == 1 else torch.cat([part.chunk_id for part in parts])
        vecs = self._chunk_forward(parts, ids, flat, batch)
        if len(parts) > 1:  # back to chunk order
            vecs = vecs.new_empty(vecs.shape).index_copy(0, ids - p.chunk_lo, vecs)
        level = batch.set_levels[0]
        pack = level.pack[p.set_lo : p.set_hi, : p.width]
        packed, mask = _gather_pack(vecs, torch.where(pack >= 0, pack - p.chunk_lo, -1))
        return self._pool_sets(packed, mask, level.owner[p.set_lo : p.set_hi])

    def _pool_sets(
        self, packed: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.set_sab(packed, mask) + sinusoid(depth, self.width)[:, None, :].to(
            packed.dtype
        )
        return self.set_pma(hidden, mask)

    def _chunk_forward(
        self, parts: list[ChunkGroup], ids: torch.Tensor, flat: torch.Tensor, batch: Batch
    ) -> torch.Tensor:
        """(chunks, width) for the chunks ``ids`` of ``parts``, in the order of the parts."""
        lifted, masks = zip(*(self._lift(part, flat) for part in parts), strict=True)
        x = lifted[0] if len(parts) == 1 else torch.cat(lifted)
        mask = masks[0] if len(parts) == 1 else torch.cat(masks)
        x = self.chunk_sab1(x, mask)
        enc = self.type_embedding(batch.chunk_type[ids]) + sinusoid(
            batch.chunk_depth[ids], self.width
        )
        if self.chunk_position:
            enc = enc + sinusoid(batch.chunk_pos[ids], self.width)
        x = self.chunk_sab2(x + enc[:, None, :].to(x.dtype), mask)
        return self.chunk_pma(x, mask)

    def _lift(self, group: ChunkGroup, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, c, width) lifted elements of a group's chunks and their (S, c) mask."""
        c, k = self.chunk_size, math.prod(group.kernel_shape)
        elem = torch.arange(c, device=flat.device)
        mask = elem[None, :] < group.valid[:, None]  # (S, c)
        index = group.start[:, None, None] + (
            elem[None, :, None] * k + torch.arange(k, device=flat.device)
        )
        # Padding reads the first value and is zeroed: no padded copy of the weights.
        values = flat[torch.where(mask[:, :, None], index, 0)] * mask[:, :, None]
        return self.lift(values, group.kernel_shape), mask

    @staticmethod
    def _pool(items: torch.Tensor, pack: torch.Tensor, sab: SetStack, pma: PMA) -> torch.Tensor:
        packed, mask = _gather_pack(items, pack)
        return pma(sab(packed, mask), mask)


# The five per-tensor summaries handed to the encoder (StatNN's seven features, another set,
# are sne_plugin.research.baselines._statnn.STATNN_FEATURES).
SUMMARY_NAMES = ("mean", "std", "min", "max", "mean_abs")


@torch.no_grad()
def tensor_summaries(flat: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """(T, 5) ``SUMMARY_NAMES`` of each tensor, squashed by sign(x) log(1 + |x|).

    Decision: each tensor's vector also receives these summary statistics (the features
    StatNN lives on). The chunk encoder can learn such statistics, but handing them over
    costs five segment reductions and speeds up learning; ``tensor_stats=False`` turns it
    off, and the benchmark reports both.
    """
    x = flat.float()
    lengths = sizes.to(x.device)
    mean = torch.segment_reduce(x, "mean", lengths=lengths)
    second = torch.segment_reduce(x * x, "mean", lengths=lengths)
    std = (second - mean * mean).clamp_min(0).sqrt()
    low = torch.segment_reduce(x, "min", lengths=lengths)
    high = torch.segment_reduce(x, "max", lengths=lengths)
    mean_abs = torch.segment_reduce(x.abs(), "mean", lengths=lengths)
    stats = torch.stack([mean, std, low, high, mean_abs], dim=1)
    return stats.sign() * stats.abs().log1p()


def _gather_pack(items: torch.Tensor, pack: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, h) items and an (S, L) index (-1 = padding) -> (S, L, h) and the (S, L) mask."""
    mask = pack >= 0
    padded = torch.cat([items, items.new_zeros(1, items.shape[1])])
    return padded[torch.where(mask, pack, items.shape[0])], mask


class Standardize(nn.Module):
    """Standardise embeddings with running statistics over the networks seen in training.

    Measured on random-initialised encoders: the part of an embedding that differs between
    networks is ~1e-4 of its size (every level adds shared encodings and seeds), although it
    already ranks networks well. Standardising lets the head read those differences from
    the first step. Batches of one network (online updates) use the running statistics.
    """

    mean: torch.Tensor
    var: torch.Tensor
    seen: torch.Tensor

    def __init__(self, width: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("var", torch.ones(width))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] > 1:
            mean, var = x.mean(0), x.var(0, unbiased=False)
            with torch.no_grad():
                rate = 1.0 if int(self.seen) == 0 else self.momentum
                self.mean.lerp_(mean.detach().to(self.mean.dtype), rate)
                self.var.lerp_(var.detach().to(self.var.dtype), rate)
                self.seen.add_(1)
        else:
            mean, var = self.mean.to(x.dtype), self.var.to(x.dtype)
        return (x - mean) * torch.rsqrt(var + self.eps)

    @torch.no_grad()
    def set_statistics(self, x: torch.Tensor) -> None:
        """Set the statistics to those of the embeddings ``x`` (n, width) exactly."""
        self.mean.copy_(x.mean(0))
        self.var.copy_(x.var(0, unbiased=False))
        self.seen.fill_(max(int(self.seen), 1))


class SNENet(nn.Module):
    """Encoder plus head: networks -> one prediction (a logit for ``bce``) each.

    With ``n_side > 0`` the head also reads ``n_side`` side inputs per network (the
    validation curve so far, training progress, hyperparameters), concatenated to the
    standardised embedding. With ``n_stats > 0`` a second branch, a small MLP, reads
    ``n_stats`` standardised weight statistics per network
    (:func:`sne_plugin.encoder.stats.network_summary`); its output joins the concatenation.

    Examples
    --------
    >>> from sne_plugin import NetworkWeights
    >>> from sne_plugin.encoder import make_batch
    >>> nets = [NetworkWeights.from_pairs([(torch.full((4, 3), s), None)]) for s in (0.1, 0.2)]
    >>> batch = make_batch([net.spec for net in nets], chunk_size=8, max_set=64)
    >>> flat = torch.cat([torch.from_numpy(net.flatten()) for net in nets])
    >>> _ = torch.manual_seed(0)
    >>> model = SNENet(hidden=16, n_side=1, width=16, heads=2, chunk_size=8, max_set=64)
    >>> model(batch, flat, side=torch.tensor([[0.5], [0.7]])).shape  # one logit per network
    torch.Size([2])
    """

    def __init__(
        self, hidden: int = 64, n_side: int = 0, n_stats: int = 0, **encoder_kwargs: object
    ) -> None:
        super().__init__()
        self.encoder = SNEEncoder(**encoder_kwargs)  # type: ignore[arg-type]
        width = self.encoder.width
        self.n_side, self.n_stats = n_side, n_stats
        self.standardize = Standardize(width)
        self.stats_branch = (
            nn.Sequential(nn.Linear(n_stats, hidden), nn.GELU(), nn.Linear(hidden, width))
            if n_stats
            else None
        )
        n_branch = width if n_stats else 0
        self.head = nn.Sequential(
            nn.Linear(width + n_side + n_branch, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )

    def forward(
        self,
        batch: Batch,
        flat: torch.Tensor,
        side: torch.Tensor | None = None,
        stats: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.head_from(self.encoder(batch, flat), side, stats)

    def head_from(
        self,
        encoded: torch.Tensor,
        side: torch.Tensor | None = None,
        stats: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`forward` from the encoder's raw output ``(B, width)``: standardise, head."""
        features: torch.Tensor = self.standardize(encoded)
        parts = [features]
        if self.n_side:
            parts.append(_extra(side, len(features), self.n_side, "side inputs").to(features))
        if self.stats_branch is not None:
            stats = _extra(stats, len(features), self.n_stats, "weight statistics")
            parts.append(self.stats_branch(stats.to(features)))
        return self.head(torch.cat(parts, dim=1) if len(parts) > 1 else features).squeeze(-1)

    def embed(self, batch: Batch, flat: torch.Tensor) -> torch.Tensor:
        """Standardised network embeddings, (B, width)."""
        out: torch.Tensor = self.standardize(self.encoder(batch, flat))
        return out


def _extra(values: torch.Tensor | None, n: int, width: int, what: str) -> torch.Tensor:
    """``values`` checked to be ``(n, width)``: one row of ``what`` per network."""
    if values is None or values.shape != (n, width):
        shape = None if values is None else tuple(values.shape)
        raise ValueError(f"expected {what} of shape ({n}, {width}), got {shape}")
    return values
