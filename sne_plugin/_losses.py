"""Ranking losses for :class:`~sne_plugin.SNERegressor`: the benchmark's metric is Kendall's
tau, which only asks that networks come out in the right order.

``pairwise`` is RankNet's logistic loss: for every pair ``(i, j)`` of a minibatch with
``target[i] > target[j]`` (and, when ``groups`` are given, the same group), the loss is
``log(1 + exp(-(s[i] - s[j])))`` on the scores ``s``; the mean over pairs is returned.
Scores are a ranking, not a calibrated estimate of the target.

>>> import torch
>>> target = torch.tensor([0.1, 0.5, 0.9])
>>> right = pairwise_logistic(torch.tensor([-1.0, 0.0, 1.0]), target)
>>> wrong = pairwise_logistic(torch.tensor([1.0, 0.0, -1.0]), target)
>>> bool(right < wrong)
True
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import kendalltau

from sne_plugin.errors import SNEError, describe

__all__ = ["RANKING_LOSSES", "check_groups", "grouped_tau", "pair_mask", "pairwise_logistic"]

RANKING_LOSSES = ("pairwise",)
"""Losses whose output is a ranking score (``predict`` returns it as it is)."""


def pair_mask(target: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """``(n, n)`` bool: ``[i, j]`` is True where ``target[i] > target[j]`` within one group."""
    mask = target[:, None] > target[None, :]
    if groups is not None:
        mask &= groups[:, None] == groups[None, :]
    return mask


def pairwise_logistic(
    scores: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """RankNet's loss, the mean over ordered pairs of ``softplus(s[j] - s[i])``.

    With no pair to order (one network, equal targets, singleton groups) it is a zero that
    still carries the graph, so a training step stays valid.
    """
    mask = pair_mask(target, groups)
    if not bool(mask.any()):
        return scores.sum() * 0.0
    diff = scores[:, None] - scores[None, :]
    return torch.nn.functional.softplus(-diff[mask]).mean()


def check_groups(groups: object, n: int) -> np.ndarray | None:
    """Group labels as integer codes ``(n,)`` (``None`` stays ``None``: one group).

    Any hashable labels are accepted (numbers, strings); missing ones (NaN, None) are not.

    >>> check_groups(["a", "b", "a"], 3).tolist()
    [0, 1, 0]
    """
    if groups is None:
        return None
    labels = np.asarray(groups)
    if labels.ndim != 1 or len(labels) != n:
        raise SNEError(
            f"expected groups to hold one label per network ({n}), got {describe(groups)} "
            f"of shape {labels.shape}"
        )
    missing = [i for i, g in enumerate(labels.tolist()) if g is None or g != g]
    if missing:
        raise SNEError(
            f"groups has {len(missing)} missing labels (NaN or None; first at index "
            f"{missing[0]}); every network needs a group"
        )
    try:
        _, codes = np.unique(labels, return_inverse=True)
    except TypeError:
        raise SNEError(
            f"expected groups to hold labels of one comparable type, got {describe(groups)}"
        ) from None
    return codes.astype(np.int64)


def grouped_tau(pred: np.ndarray, target: np.ndarray, groups: np.ndarray | None) -> float:
    """Kendall's tau within each group, averaged over the groups where it is defined."""
    codes = np.zeros(len(pred), dtype=np.int64) if groups is None else groups
    taus = []
    for code in np.unique(codes):
        inside = codes == code
        if inside.sum() < 2 or np.ptp(target[inside]) == 0:
            continue
        tau = kendalltau(pred[inside], target[inside]).statistic
        if not np.isnan(tau):
            taus.append(float(tau))
    return float(np.mean(taus)) if taus else float("nan")
