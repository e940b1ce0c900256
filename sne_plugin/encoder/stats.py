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

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from sne_plugin.weights import NetworkSpec

__all__ = [
    "SPECTRAL_FEATURES",
    "STATNN_FEATURES",
    "SUMMARY_FEATURES",
    "network_summaries",
    "network_summary",
    "spectral_summaries",
    "spectral_summary",
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

_SPECTRAL_STATS = (
    "log10_sigma_max",
    "stable_rank",
    "effective_rank",
    "log10_frobenius",
    "sigma_ratio",
)
SPECTRAL_FEATURES = (
    *(f"{reduction}_{stat}" for reduction in _REDUCTIONS for stat in _SPECTRAL_STATS),
    "sum_log10_sigma_max",
)
"""Names of :func:`spectral_summary`'s entries, in order."""
# Above this many multiply-adds (m * n * min(m, n), about 0.1 s) a matrix gets no full SVD:
# its largest singular value comes from Lanczos iteration, and the statistics that need the
# whole spectrum are NaN (unknown).
_SVD_BUDGET = 2**30


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


def spectral_summary(spec: NetworkSpec, flat: np.ndarray | torch.Tensor) -> np.ndarray:
    """Fixed-size summary (:data:`SPECTRAL_FEATURES`) of the singular values of one network's
    weight matrices: each weight of two or more dims (norm layers' scales excluded), reshaped
    to ``(shape[0], -1)``, gives five numbers: ``log10`` of its largest singular value, its
    stable rank and its effective rank (``exp`` of the entropy of the normalised squared
    singular values), both as shares of ``min(m, n)``, ``log10`` of its Frobenius norm, and the
    smallest over the largest singular value. They are reduced over the layers like
    :func:`network_summary` (mean, min, max, first, last), with the sum of the ``log10``
    largest singular values last (the log of their product, a bound on the network's
    Lipschitz constant). NaN where a network has no such weight.

    Matrices too large for a full SVD in about 0.1 s (``m * n * min(m, n)`` above 2**30, such
    as a 2048 x 1024 dense layer) get their largest singular value by Lanczos iteration
    (scipy's ``svds``) and NaN for the effective rank and the smallest singular value; the
    reductions skip NaN.

    >>> import numpy as np
    >>> from sne_plugin import NetworkWeights
    >>> net = NetworkWeights.from_pairs([(np.eye(3), np.zeros(3)), (2 * np.eye(3), None)])
    >>> named = dict(zip(SPECTRAL_FEATURES, spectral_summary(net.spec, net.flatten())))
    >>> round(float(named["max_log10_sigma_max"]), 3), float(named["mean_stable_rank"])
    (0.301, 1.0)
    """
    values = flat.numpy() if torch.is_tensor(flat) else np.asarray(flat)
    rows = []
    start = 0
    for layer in spec.layers:
        size = int(np.prod(layer.weight_shape))
        if len(layer.weight_shape) >= 2 and layer.kind.value != "norm":
            matrix = values[start : start + size].reshape(layer.weight_shape[0], -1)
            rows.append(_spectrum_statistics(matrix))
        start += size + (int(np.prod(layer.bias_shape)) if layer.bias_shape is not None else 0)
    if not rows:
        return np.full(len(SPECTRAL_FEATURES), np.nan)
    table = np.stack(rows)
    with warnings.catch_warnings():  # a column NaN in every layer stays NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        parts = [np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)]
    return np.concatenate([*parts, table[0], table[-1], table[:, :1].sum(0)])


def spectral_summaries(
    specs: Sequence[NetworkSpec], flats: Sequence[np.ndarray | torch.Tensor]
) -> np.ndarray:
    """:func:`spectral_summary` of each network, ``(n, len(SPECTRAL_FEATURES))``."""
    return np.stack([spectral_summary(spec, flat) for spec, flat in zip(specs, flats)])


def _spectrum_statistics(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    m, n = matrix.shape
    k = min(m, n)
    total = float(np.square(matrix).sum())  # the squared Frobenius norm
    if not np.isfinite(total) or total <= 0:  # all zeros (or not finite): nothing to read
        return np.full(len(_SPECTRAL_STATS), np.nan)
    if m * n * k > _SVD_BUDGET:
        top = _largest_singular_value(matrix)
        effective, ratio = np.nan, np.nan
    else:  # the squared singular values: eigenvalues of the smaller Gram matrix (faster)
        gram = matrix @ matrix.T if m <= n else matrix.T @ matrix
        squared = np.maximum(np.linalg.eigvalsh(gram), 0.0)  # ascending
        top = float(np.sqrt(squared[-1]))
        share = squared / squared.sum()
        effective = float(np.exp(-(share * np.log(np.where(share > 0, share, 1.0))).sum()) / k)
        ratio = float(np.sqrt(squared[0]) / top)
    return np.array([np.log10(top), total / top**2 / k, effective, 0.5 * np.log10(total), ratio])


def _largest_singular_value(matrix: np.ndarray) -> float:
    """The largest singular value by Lanczos iteration (ARPACK), from a fixed start vector."""
    from scipy.sparse.linalg import svds

    start = np.random.default_rng(0).standard_normal(min(matrix.shape))
    return float(svds(matrix, k=1, v0=start, return_singular_vectors=False)[0])
