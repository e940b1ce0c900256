"""A study whose SNEPruner ranks trials by their network's first weight (deterministic)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# A script that test_lightning.py runs in a subprocess (Lightning's ddp_spawn workers import
# it as __mp_main__); not a test module, and not for the doctest collection either.
collect_ignore = ["lightning_ddp_study.py"]

optuna = pytest.importorskip("optuna")

from sne_plugin.integrations.optuna import SNEPruner  # noqa: E402
from sne_plugin.testing import FirstWeightPredictor  # noqa: E402

# Two good trials finish, a bad one is pruned after its first epoch, a good one finishes.
FIRST_WEIGHTS = (0.9, 0.8, -0.9, 0.85)


@pytest.fixture
def run_study(tmp_path: Path) -> Callable[[Callable[[optuna.Trial], float]], optuna.Study]:
    def run(objective: Callable[[optuna.Trial], float]) -> optuna.Study:
        pruner = SNEPruner(
            FirstWeightPredictor(), n_warmup_steps=0, n_min_trials=2, learning_curve=0.0
        )
        study = optuna.create_study(
            storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize", pruner=pruner
        )
        for w in FIRST_WEIGHTS:
            study.enqueue_trial({"w0": w})
        study.optimize(objective, n_trials=len(FIRST_WEIGHTS))
        return study

    return run
