"""Several real processes (spawn) share one study on SQLite or on a journal file."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import optuna
import pytest

from sne_plugin.testing import optuna as helpers
from sne_plugin.testing.optuna import storage_for

N_FIRST = 3  # trials per worker before they meet; n_min_trials = 2 * N_FIRST


def _two_workers(tmp_path: Path, kind: str, target: object) -> list[dict]:
    """Run ``target`` in two spawned processes on one study; their JSON results."""
    path = str(tmp_path / ("study.db" if kind == "sqlite" else "journal.log"))
    optuna.create_study(study_name="dist", storage=storage_for(kind, path), direction="maximize")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outs = [str(tmp_path / f"worker{i}.json") for i in range(2)]
    procs = [
        ctx.Process(
            target=target,
            args=(kind, path, str(tmp_path / "artifacts"), i, barrier, outs[i], N_FIRST),
        )
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
    assert [proc.exitcode for proc in procs] == [0, 0]
    return [json.loads(Path(out).read_text()) for out in outs]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_each_worker_trains_on_the_trials_the_other_finished(tmp_path: Path, kind: str) -> None:
    for me, result in enumerate(_two_workers(tmp_path, kind, helpers.worker)):
        owners = set(result["owners"].values())
        assert result["n_refits"] == 1
        assert owners == {0, 1}, f"worker {me} trained on trials of workers {owners} only"
        assert len(result["training_trials"]) == 2 * N_FIRST
        assert result["predictions_finite"] and result["n_predictions"] >= 2


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_the_pretrained_predictor_fine_tunes_on_both_workers_trials(
    tmp_path: Path, kind: str
) -> None:
    for me, result in enumerate(_two_workers(tmp_path, kind, helpers.curve_worker)):
        assert result["n_refits"] == 1, result
        assert set(result["owners"].values()) == {0, 1}, f"worker {me}: {result}"
