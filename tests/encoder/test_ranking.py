"""Ranking loss and groups: the loss orders pairs, groups keep pairs apart, errors, fitting."""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from sne_plugin import SNEError, SNERegressor
from sne_plugin._losses import check_groups, grouped_tau, pair_mask, pairwise_logistic
from sne_plugin.testing import scaled_cnn_zoo

FAST = {"width": 16, "heads": 1, "chunk_size": 16, "epochs": 12, "random_state": 0}


def _reference(scores: list[float], target: list[float], groups: list[int]) -> float:
    """RankNet's loss written out pair by pair."""
    terms = [
        math.log1p(math.exp(-(scores[i] - scores[j])))
        for i, j in itertools.permutations(range(len(scores)), 2)
        if target[i] > target[j] and groups[i] == groups[j]
    ]
    return sum(terms) / len(terms)


def test_a_perfect_ranking_costs_less_than_a_reversed_one() -> None:
    target = torch.tensor([0.2, 0.4, 0.6, 0.8])
    right = torch.tensor([-2.0, -1.0, 1.0, 2.0], requires_grad=True)
    wrong = torch.tensor([2.0, 1.0, -1.0, -2.0])
    loss = pairwise_logistic(right, target)
    assert float(loss.detach()) < float(pairwise_logistic(wrong, target))
    loss.backward()
    assert right.grad is not None
    # the gradient is not zero and pushes the best up and the worst down
    assert float(right.grad[-1]) < 0 < float(right.grad[0])


def test_the_loss_matches_a_pair_by_pair_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    scores, target = torch.randn(7, generator=gen), torch.rand(7, generator=gen)
    groups = [0, 0, 1, 1, 1, 0, 2]
    got = pairwise_logistic(scores, target, torch.tensor(groups))
    want = _reference(scores.tolist(), target.tolist(), groups)
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_groups_mask_cross_group_pairs() -> None:
    # Two groups on opposite scales: every network of group 1 has a lower target than any of
    # group 0. Scores that rank each group perfectly but put group 1 on top are right
    # within the groups, and only the cross-group pairs call them wrong.
    target = torch.tensor([0.80, 0.85, 0.90, 0.10, 0.15, 0.20])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    scores = torch.tensor([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    mask = pair_mask(target, groups)
    assert not bool(mask[:3, 3:].any()) and not bool(mask[3:, :3].any())
    assert int(mask.sum()) == 6  # three ordered pairs per group
    within = pairwise_logistic(scores, target, groups)
    mixed = pairwise_logistic(scores, target)
    want = _reference(scores.tolist(), target.tolist(), groups.tolist())
    assert float(within) == pytest.approx(want)
    assert float(within) < 0.3 < float(mixed)


def test_no_pair_gives_a_zero_that_keeps_the_graph() -> None:
    scores = torch.tensor([0.3, 0.1], requires_grad=True)
    loss = pairwise_logistic(scores, torch.tensor([0.5, 0.5]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and scores.grad is not None


def test_grouped_tau_is_the_mean_of_the_taus_within_groups() -> None:
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=30), rng.normal(size=30)
    groups = np.repeat([0, 1, 2], 10)
    want = np.mean([kendalltau(pred[g == groups], target[g == groups]).statistic for g in range(3)])
    assert grouped_tau(pred, target, groups) == pytest.approx(want)
    assert grouped_tau(pred, target, None) == pytest.approx(kendalltau(pred, target).statistic)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([0, 1], r"expected groups to hold one label per network \(4\), got .* shape \(2,\)"),
        ([0.0, float("nan"), 1.0, 1.0], r"groups has 1 missing labels .*first at index 1"),
        (["a", None, "b", "a"], r"groups has 1 missing labels"),
        (np.zeros((4, 2)), r"one label per network \(4\).*shape \(4, 2\)"),
    ],
)
def test_bad_groups_are_refused(groups, message) -> None:  # type: ignore[no-untyped-def]
    nets, y = scaled_cnn_zoo(4)
    with pytest.raises(SNEError, match=message):
        SNERegressor(**{**FAST, "epochs": 1}, loss="pairwise").fit(nets, y, groups=groups)
    with pytest.raises(SNEError, match=message):
        check_groups(groups, 4)


def test_unknown_loss_names_the_ranking_ones_too() -> None:
    nets, y = scaled_cnn_zoo(4)
    with pytest.raises(SNEError, match=r"one of \('auto', 'bce', 'mse', 'pairwise'\)"):
        SNERegressor(loss="listwise").fit(nets, y)


def test_ranking_batches_come_from_one_group(zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    reg = SNERegressor(**{**FAST, "epochs": 1, "batch_size": 8}, loss="pairwise")
    groups = np.arange(40) % 3
    reg.fit(nets[:40], y[:40], groups=groups)
    batches = reg._batches(np.arange(40), groups)
    assert sorted(np.concatenate(batches).tolist()) == list(range(40))
    assert all(len(set(groups[b].tolist())) == 1 and len(b) <= 8 for b in batches)
    assert min(len(b) for b in batches) >= 6  # near-equal splits, no stray singleton batch


def test_pairwise_fit_ranks_and_predicts_a_score(zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    reg = SNERegressor(**FAST, loss="pairwise").fit(nets[:128], y[:128])
    assert reg.loss_ == "pairwise"
    pred = reg.predict(nets[128:])
    assert kendalltau(pred, y[128:]).statistic > 0.5
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_allclose(again.predict(nets[128:]), pred, rtol=1e-6)


def test_groups_of_opposite_scale_train_within_groups(zoo) -> None:  # type: ignore[no-untyped-def]
    # The networks with the larger weights (group 1) carry targets on a scale below every
    # target of group 0. Within each group the target follows the weights; across the groups
    # it contradicts them. Masking the cross-group pairs learns the weights' order; mixing
    # them learns a sawtooth.
    nets, y = zoo
    groups = (y[:128] >= np.median(y[:128])).astype(int)
    target = np.where(groups == 1, 0.1 * y[:128], 0.5 + 0.5 * y[:128])
    fit = dict(**FAST, loss="pairwise", validation_fraction=0.0)
    masked = SNERegressor(**fit).fit(nets[:128], target, groups=groups)
    mixed = SNERegressor(**fit).fit(nets[:128], target)
    tau_masked = kendalltau(masked.predict(nets[128:]), y[128:]).statistic
    tau_mixed = kendalltau(mixed.predict(nets[128:]), y[128:]).statistic
    assert tau_masked > 0.5 and tau_masked > tau_mixed + 0.3, (tau_masked, tau_mixed)


def test_early_stopping_scores_within_groups(zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    groups = (y[:48] >= np.median(y[:48])).astype(int)
    target = np.where(groups == 1, 0.1 * y[:48], 0.5 + 0.5 * y[:48])
    reg = SNERegressor(**{**FAST, "epochs": 2}, loss="pairwise").fit(nets[:48], target)
    data = reg._data(nets[:48], None)
    data.groups = groups
    pred = reg.predict(nets[:48])
    want = np.mean([kendalltau(pred[groups == g], target[groups == g]).statistic for g in (0, 1)])
    assert reg._val_tau(data, target, np.arange(48)) == pytest.approx(want)
    assert want != pytest.approx(kendalltau(pred, target).statistic)
