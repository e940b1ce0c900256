"""Optuna test doubles: tiny networks whose quality is their weight scale, trials driven
through the real Optuna API (``ask`` / ``report`` / ``report_weights`` / ``should_prune`` /
``tell``), and one worker process of a distributed study (importable by spawned processes).

>>> import optuna
>>> from sne_plugin.integrations.optuna import SNEPruner
>>> from sne_plugin.testing import FirstWeightPredictor
>>> study = optuna.create_study(direction="maximize", pruner=SNEPruner(FirstWeightPredictor()))
>>> run_trial(study, 0.5, seed=0)
[False, False]
"""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from sne_plugin.integrations.optuna import SNEPruner, report_weights
from sne_plugin.testing import tiny_regressor

__all__ = ["N_STEPS", "curve_worker", "final_value", "net", "run_trial", "storage_for", "worker"]

N_STEPS = 2


def net(scale: float, seed: int, step: int) -> torch.nn.Module:
    """A 4-8-2 MLP whose weights grow with ``scale`` (and a little with ``step``)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * scale * (1.0 + 0.2 * step))
    return model


def final_value(scale: float, direction: str) -> float:
    """Larger scale = better trial, in either direction."""
    return scale if direction == "maximize" else 1.0 - scale


def run_trial(
    study: optuna.Study,
    scale: float,
    seed: int,
    *,
    check: bool = True,
    weights: bool = True,
    attrs: dict[str, Any] | None = None,
) -> list[bool]:
    """One trial through ask/report/report_weights/should_prune/tell; its should_prune answers.

    Stops (told PRUNED) at the first True; otherwise completes with ``final_value``.
    """
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    direction = "maximize" if maximize else "minimize"
    trial = study.ask()
    for key, value in (attrs or {}).items():
        trial.set_user_attr(key, value)
    answers: list[bool] = []
    for step in range(N_STEPS):
        trial.report(0.0, step)  # the user's metric: all equal, so only the weights rank
        if weights:
            report_weights(trial, net(scale, seed, step), step)
        if check:
            answers.append(trial.should_prune())
            if answers[-1]:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return answers
    study.tell(trial, final_value(scale, direction))
    return answers


def storage_for(kind: str, path: str) -> Any:
    """An RDB (SQLite) URL or a journal-file storage at ``path``."""
    if kind == "sqlite":
        return f"sqlite:///{path}"
    return JournalStorage(JournalFileBackend(path))


def worker(
    kind: str,
    path: str,
    artifact_dir: str,
    worker_id: int,
    barrier: Any,
    out: str,
    n_first: int,
) -> None:
    """One process of a distributed study: ``n_first`` trials, wait for the other, one more.

    Writes what its pruner trained on and which predictions it sees to ``out`` (JSON).
    """
    torch.set_num_threads(1)
    pruner = SNEPruner(
        factory=tiny_regressor,
        n_min_trials=2 * n_first,
        refit_every=1000,
        n_warmup_steps=1,
        artifact_dir=artifact_dir,
    )
    study = _meet(kind, path, pruner, worker_id, barrier, n_first)
    barrier.wait(timeout=120)  # both have recorded their predictions
    numbers = list(pruner.training_trials_)
    owners = {t.number: t.user_attrs.get("worker") for t in study.trials}
    predictions = [
        v for t in study.trials for k, v in t.user_attrs.items() if k.startswith("sne:prediction:")
    ]
    result = {
        "training_trials": numbers,
        "owners": {str(n): owners[n] for n in numbers},
        "n_refits": pruner.n_refits_,
        "predictions_finite": all(isinstance(v, float) and math.isfinite(v) for v in predictions),
        "n_predictions": len(predictions),
    }
    with open(out, "w") as handle:
        json.dump(result, handle)


def _meet(
    kind: str, path: str, pruner: SNEPruner, worker_id: int, barrier: Any, n_first: int
) -> optuna.Study:
    """``n_first`` trials of this worker, wait for the other, then one more trial."""
    study = optuna.load_study(study_name="dist", storage=storage_for(kind, path), pruner=pruner)
    for i in range(n_first):
        scale = 0.2 + 0.8 * (2 * i + worker_id) / (2 * n_first)
        run_trial(study, scale, seed=100 * worker_id + i, attrs={"worker": worker_id})
    barrier.wait(timeout=120)
    run_trial(study, 0.9, seed=100 * worker_id + 99, attrs={"worker": worker_id})
    return study


def curve_worker(
    kind: str,
    path: str,
    artifact_dir: str,
    worker_id: int,
    barrier: Any,
    out: str,
    n_first: int,
) -> None:
    """As :func:`worker`, with the shipped predictor, its correction at full weight so that
    it is fine-tuned (the shipped weight is 0, and a correction of weight 0 is not tuned).

    Writes which trials its fine-tuning used, and whose they were, to ``out`` (JSON).
    """
    from sne_plugin.pretrained import CurvePredictor, load_pretrained

    torch.set_num_threads(1)
    shipped = load_pretrained()
    pruner = SNEPruner(
        CurvePredictor(shipped.regressor, shipped.info, shrink=1.0),
        n_min_trials=2,
        refit_every=2 * n_first,
        n_warmup_steps=1,
        artifact_dir=artifact_dir,
    )
    study = _meet(kind, path, pruner, worker_id, barrier, n_first)
    numbers = list(pruner.training_trials_)
    owners = {t.number: t.user_attrs.get("worker") for t in study.trials}
    result = {
        "training_trials": numbers,
        "owners": {str(n): owners[n] for n in numbers},
        "n_refits": pruner.n_refits_,
    }
    with open(out, "w") as handle:
        json.dump(result, handle)
