"""SNEPruningCallback in a real Lightning fit inside a real Optuna study (SQLite storage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")
optuna = pytest.importorskip("optuna")

from sne_plugin.integrations.lightning import SNEPruningCallback  # noqa: E402


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


class _Regression(pl.LightningModule):
    def __init__(self, w0: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        with torch.no_grad():
            self.net[0].weight[0, 0] = w0  # what the test's predictor ranks by

    def training_step(self, batch, _):  # type: ignore[no-untyped-def]
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, _):  # type: ignore[no-untyped-def]
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=0.0)  # the weights stay as set


def _loader() -> torch.utils.data.DataLoader:
    data = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    return torch.utils.data.DataLoader(data, batch_size=8)


def _fit(module: pl.LightningModule, callback: SNEPruningCallback, epochs: int = 3) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on workers and small data
        trainer.fit(module, _loader(), _loader())
    return trainer


def test_prunes_a_lightning_fit(run_study) -> None:  # type: ignore[no-untyped-def]
    def objective(trial: optuna.Trial) -> float:
        callback = SNEPruningCallback(trial, monitor="val_loss")
        trainer = _fit(_Regression(trial.suggest_float("w0", -1.0, 1.0)), callback)
        callback.check_pruned()
        return -float(trainer.callback_metrics["val_loss"])

    study = run_study(objective)
    assert states(study) == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    pruned = study.trials[2]
    assert list(pruned.intermediate_values) == [0]
    assert "sne:weights:0" in pruned.user_attrs
    assert list(study.trials[0].intermediate_values) == [0, 1, 2]


def test_an_unlogged_metric_warns_and_reports_nothing() -> None:
    trial = optuna.create_study().ask()
    callback = SNEPruningCallback(trial, monitor="val_acc")
    with pytest.warns(UserWarning, match=r"metric 'val_acc' was not logged at epoch 0"):
        trainer = pl.Trainer(
            max_epochs=1,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[callback],
        )
        trainer.fit(_Regression(0.0), _loader(), _loader())
    assert callback.pruned_at is None


def test_check_pruned_reads_a_stop_recorded_by_another_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Under ddp_spawn rank 0 runs in a worker process: its decision reaches the objective's
    callback through the trial's storage (another handle on the same SQLite file here)."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    trial = optuna.create_study(storage=storage, study_name="s").ask()
    callback = SNEPruningCallback(trial, monitor="val_loss")
    callback.check_pruned()  # nothing recorded: returns quietly
    elsewhere = optuna.load_study(study_name="s", storage=storage)
    optuna.Trial(elsewhere, trial._trial_id).set_user_attr("sne:pruned_at", 1)
    with pytest.raises(optuna.TrialPruned, match="pruned by SNEPruner at epoch 1"):
        callback.check_pruned()


_DDP_STUDY = Path(__file__).with_name("lightning_ddp_study.py")


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_ddp_rank_zero_reports_and_every_rank_stops_on_its_decision(tmp_path: Path) -> None:
    """Two CPU processes (ddp_spawn, gloo) per trial in a real study on SQLite: see
    lightning_ddp_study.py. Trials 0 and 1 train in one process, 2 (pruned) and 3 under DDP."""
    logs = tmp_path / "logs"
    logs.mkdir()
    command = [
        sys.executable,
        str(_DDP_STUDY),
        str(tmp_path / "study.db"),
        str(tmp_path),
        str(logs),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert states(study) == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    pruned, survivor = study.trials[2], study.trials[3]
    # Rank 0 alone reported: every value is rank 0's (a rank logs 100 * rank + epoch) ...
    assert pruned.intermediate_values == {0: 0.0}
    assert survivor.intermediate_values == {0: 0.0, 1: 1.0, 2: 2.0}
    assert sorted(k for k in pruned.user_attrs if k.startswith("sne:weights:")) == ["sne:weights:0"]
    assert pruned.user_attrs["sne:weights:0"] is not None  # in the artifact store
    assert pruned.user_attrs["sne:pruned_at"] == 0 and "sne:pruned_at" not in survivor.user_attrs
    # ... and only rank 0 wrote report lines.
    rank0, rank1 = _lines(logs / "rank0.jsonl"), _lines(logs / "rank1.jsonl")
    assert all(line["event"] == "validation" for line in rank1)
    reports = [(r["trial"], r["epoch"], r["stop"]) for r in rank0 if r["event"] == "report"]
    assert [r for r in reports if r[0] >= 2] == [
        (2, 0, True),
        (3, 0, False),
        (3, 1, False),
        (3, 2, False),
    ]

    # Both ranks stopped on the same decision: the same epochs, the same stop after each.
    def stops(lines: list[dict[str, object]], trial: int) -> list[tuple[object, object]]:
        return [
            (r["epoch"], r["stop"])
            for r in lines
            if r["trial"] == trial and r["event"] == "validation"
        ]

    assert stops(rank0, 2) == stops(rank1, 2) == [(0, True)]
    assert stops(rank0, 3) == stops(rank1, 3) == [(0, False), (1, False), (2, False)]
