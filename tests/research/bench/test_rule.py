"""sne_plugin.research.bench.rule: the simulated rule prunes exactly as SNEPruner does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sne_plugin import NetworkWeights
from sne_plugin.curve import CurveModel
from sne_plugin.integrations.optuna import SNEPruner
from sne_plugin.pretrained import CurvePredictor
from sne_plugin.research.bench.heldout import ZeroCorrection
from sne_plugin.research.bench.pruner_replay import Search, replay
from sne_plugin.research.bench.rule import Rule, simulate


def _curves(seed: int, trials: int = 12, epochs: int = 6) -> np.ndarray:
    """Noisy saturating curves whose early order is not their final order."""
    rng = np.random.default_rng(seed)
    top, rate = rng.uniform(0.3, 0.95, trials), rng.uniform(0.1, 1.5, trials)
    k = np.arange(1, epochs + 1)
    return top[:, None] * (1 - np.exp(-rate[:, None] * k)) + rng.normal(0, 0.02, (trials, epochs))


def _net() -> NetworkWeights:
    return NetworkWeights.from_pairs([(torch.ones(2, 3), torch.zeros(2))])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("rule", "learned"),
    [
        (Rule(80, 1, 5), False),
        (Rule(70, 2, 3), False),
        (Rule(75, 1, 4), True),
        (Rule(80, 1, 5, 25.0, 3), False),  # SNEPruner's default rule
        (Rule(80, 1, 6, 0.0, 2), True),
    ],
)
def test_simulation_matches_the_real_pruner(seed: int, rule: Rule, learned: bool) -> None:
    values = _curves(seed)
    curve = None
    if learned:  # a curve model fitted on other curves: final rank from the features
        from sne_plugin.curve import curve_features, percentile_ranks

        other = _curves(seed + 100, trials=40)
        rows = [
            curve_features(
                other[:, k],
                other[:, k - 1] if k else np.full(40, np.nan),
                other[:, : k + 1].max(1),
                (k + 1) / 6,
            )
            for k in range(6)
        ]
        target = np.tile(percentile_ranks(other[:, -1]), 6)
        curve = CurveModel(2).fit(np.vstack(rows), target)
    predictor = CurvePredictor(ZeroCorrection(), {}, shrink=0.0, curve=curve)
    score = predictor.base
    epochs, best, best_stopped = simulate(values, score, rule)
    search = Search(0, values, [[_net() for _ in range(values.shape[1])] for _ in values])
    pruner = SNEPruner(
        predictor,
        online=False,
        percentile=rule.percentile,
        n_warmup_steps=rule.warmup,
        n_min_trials=rule.min_trials,
        early_percentile=rule.early_percentile,
        n_early_trials=rule.early_trials,
    )
    out = replay(search, pruner, first_step=1)
    assert (out.epochs, out.best, out.best_pruned) == (epochs, pytest.approx(best), best_stopped)
    assert out.epochs < values.size  # the rule did prune: the comparison is not vacuous
