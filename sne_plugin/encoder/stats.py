"""StatNN's per-tensor statistics, and a fixed-size summary of them for any architecture.

Unterthiner et al. (2020) describe each weight and bias tensor by seven numbers
(:data:`STATNN_FEATURES`). Networks of different architectures have different numbers of
tensors, so :func:`network_summary` reduces them to one vector of fixed length: for the
weight tensors and for the bias tensors apart, the mean, minimum and maximum of each
statistic over the layers, and its value in the first and in the last layer. The variance
enters as ``log10`` (it spans orders of magnitude between layers). A network without biases
gets NaN there (unknown). This vector is :class:`~sne_plugin.SNERegressor`'s stats branch.

>>> import numpy as np
>>> from sne_plugin import NetworkWeights
>>> net = NetworkWeights.from_pairs([(np.ones((4, 3)), np.zeros(4)), (np.ones((2, 4)), None)])
>>> network_summary(net.spec, net.flatten()).shape == (len(SUMMARY_FEATURES),)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sne_plugin.weights import NetworkSpec

__all__ = [
    "STATNN_FEATURES",
    "SUMMARY_FEATURES",
    "network_summaries",
    "network_summary",
    "tensor_statistics",
]

STATNN_FEATURES = ("mean", "var", "q0", "q25", "q50", "q75", "q100")
"""Unterthiner et al.'s seven features of one tensor (the SNE encoder's own per-tensor
summaries are :data:`sne_plugin.encoder.model.SUMMARY_NAMES`, five others)."""

_QUANTILES = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_ROLES = ("weight", "bias")
_REDUCTIONS = ("mean", "min", "max", "first", "last")

SUMMARY_FEATURES = tuple(
    f"{role}_{reduction}_{stat}"
    for role in _ROLES
    for reduction in _REDUCTIONS
    for stat in STATNN_FEATURES
)
"""Names of :func:`network_summary`'s entries, in order."""


def tensor_statistics(tensor: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean, variance (population) and the 0/25/50/75/100% quantiles of all entries."""
    if torch.is_tensor(tensor):
        tensor = tensor.detach().cpu().numpy()
    flat = np.sort(np.asarray(tensor, dtype=np.float64).reshape(-1))
    # The quantiles with linear interpolation (numpy's default), from the one sort
    at = _QUANTILES * (len(flat) - 1)
    lo = np.floor(at).astype(np.int64)
    hi = np.minimum(lo + 1, len(flat) - 1)
    quantiles = flat[lo] + (at - lo) * (flat[hi] - flat[lo])
    return np.concatenate([[flat.mean(), flat.var()], quantiles])


def network_summary(spec: NetworkSpec, flat: np.ndarray | torch.Tensor) -> np.ndarray:
    """The fixed-size summary (:data:`SUMMARY_FEATURES`) of one network, from its spec and
    its parameters flattened as :meth:`~sne_plugin.NetworkWeights.flatten` lays them out."""
    values = flat.numpy() if torch.is_tensor(flat) else np.asarray(flat)
    rows: dict[str, list[np.ndarray]] = {role: [] for role in _ROLES}
    start = 0
    for layer in spec.layers:
        shapes = {"weight": layer.weight_shape, "bias": layer.bias_shape}
        for role in _ROLES:
            shape = shapes[role]
            if shape is None:
                continue
            size = int(np.prod(shape))
            rows[role].append(tensor_statistics(values[start : start + size]))
            start += size
    return np.concatenate([_reduce(rows[role]) for role in _ROLES])


def network_summaries(
    specs: Sequence[NetworkSpec], flats: Sequence[np.ndarray | torch.Tensor]
) -> np.ndarray:
    """:func:`network_summary` of each network, ``(n, len(SUMMARY_FEATURES))``."""
    return np.stack([network_summary(spec, flat) for spec, flat in zip(specs, flats)])


def _reduce(rows: list[np.ndarray]) -> np.ndarray:
    """The reductions over layers of one role's statistics (NaN when it has no tensor)."""
    width = len(_REDUCTIONS) * len(STATNN_FEATURES)
    if not rows:
        return np.full(width, np.nan)
    table = np.stack(rows)
    table[:, 1] = np.log10(table[:, 1] + 1e-12)  # the variance, on a log scale
    parts = [table.mean(0), table.min(0), table.max(0), table[0], table[-1]]
    return np.concatenate(parts)
