"""Set Transformer blocks with masking: MAB, SAB, PMA.

MAB(X, Y) = LN(H + rFF(H)), H = LN(X + MultiHead(X, Y, Y)); SAB(X) = MAB(X, X);
PMA(X) = MAB(S, rFF(X)) with one learned seed S. Padded keys are masked out of attention
(``key_mask`` is True where an element is real) and attention is scaled by the per-head
width (``scaled_dot_product_attention``'s default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MAB", "PMA", "SAB", "SetStack"]


class MAB(nn.Module):
    """Multi-head attention block: queries from ``x``, keys and values from ``y``.

    ``norm_first`` (the default) normalises the inputs of attention and of the feed-forward
    layer and leaves the residual stream alone: H = X + MultiHead(LN(X), LN(Y)),
    out = H + rFF(LN(H)). Decision: the Set Transformer's post-norm form LN(X + ...)
    rescales every element's features, which erases the weight magnitudes that carry much
    of the signal about generalization; with ``norm_first=False`` the block is the original
    post-norm MAB.

    Examples
    --------
    Two sets of 5 elements with 8 features, the second holding 3 real ones: what stands in
    its padding does not reach the real elements.

    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(2, 5, 8)
    >>> mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    >>> mab = MAB(8, heads=2)
    >>> mab(x, x, mask).shape
    torch.Size([2, 5, 8])
    >>> y = x.clone()
    >>> y[1, 3:] = 100.0
    >>> torch.allclose(mab(x, x, mask)[1, :3], mab(y, y, mask)[1, :3], atol=1e-6)
    True
    """

    def __init__(self, dim: int, heads: int, ffn_mult: int = 2, norm_first: bool = True) -> None:
        super().__init__()
        self.norm_first = norm_first
        if dim % heads:
            raise ValueError(f"width must be a multiple of heads, but got {dim=} and {heads=}.")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim)
        )

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.norm_first:
            normed = self.ln1(x)
            hidden = x + self._attend(normed, normed if y is x else self.ln1(y), key_mask)
            return hidden + self.ff(self.ln2(hidden))
        hidden = self.ln1(x + self._attend(x, y, key_mask))
        return self.ln2(hidden + self.ff(hidden))

    def _attend(
        self, x: torch.Tensor, y: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, lq, d = x.shape
        lk, h = y.shape[1], self.heads
        q = self.q(x).view(b, lq, h, d // h).transpose(1, 2)
        k, v = self.kv(y).view(b, lk, 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(attended.transpose(1, 2).reshape(b, lq, d))


class SAB(nn.Module):
    """Set attention block: MAB of a set with itself.

    Examples
    --------
    Permutation-equivariant: reordering the set reorders the output alike.

    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(2, 5, 8)
    >>> order = torch.tensor([4, 2, 0, 1, 3])
    >>> sab = SAB(8, heads=2)
    >>> torch.allclose(sab(x)[:, order], sab(x[:, order]), atol=1e-6)
    True
    """

    def __init__(self, dim: int, heads: int, ffn_mult: int = 2, norm_first: bool = True) -> None:
        super().__init__()
        self.mab = MAB(dim, heads, ffn_mult, norm_first)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mab(x, x, key_mask)


class SetStack(nn.Module):
    """``depth`` SABs in a row.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> stack = SetStack(8, heads=2, depth=3)
    >>> len(stack.blocks), stack(torch.randn(2, 5, 8)).shape
    (3, torch.Size([2, 5, 8]))
    """

    def __init__(
        self, dim: int, heads: int, depth: int = 2, ffn_mult: int = 2, norm_first: bool = True
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SAB(dim, heads, ffn_mult, norm_first) for _ in range(depth))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, key_mask)
        return x


class PMA(nn.Module):
    """Pooling by multi-head attention with one learned seed: a set of vectors -> one vector.

    Examples
    --------
    Permutation-invariant: the order of the set does not change its vector.

    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(2, 5, 8)
    >>> pma = PMA(8, heads=2)
    >>> pma(x).shape
    torch.Size([2, 8])
    >>> torch.allclose(pma(x), pma(x[:, [4, 2, 0, 1, 3]]), atol=1e-6)
    True
    """

    def __init__(self, dim: int, heads: int, ffn_mult: int = 2, norm_first: bool = True) -> None:
        super().__init__()
        self.seed = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.pre = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
        self.mab = MAB(dim, heads, ffn_mult, norm_first)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        seed = self.seed.expand(x.shape[0], 1, x.shape[2])
        return self.mab(seed, self.pre(x), key_mask).squeeze(1)
