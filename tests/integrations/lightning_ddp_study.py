"""A real Optuna study whose trials train a Lightning module under DDP: two CPU processes
(``strategy="ddp_spawn"``, gloo), SQLite storage, an SNEPruner with an artifact store.

Run as a script by ``tests/integrations/test_lightning.py`` (spawned workers re-import this
file as ``__mp_main__``, which a module collected by pytest could not offer):

    python lightning_ddp_study.py STUDY_DB ARTIFACT_DIR LOG_DIR

The first two trials train in one process, the last two on two; each rank writes what its
callback did to ``LOG_DIR/rank{r}.jsonl``: a ``report`` line when it reported to the trial, a
``validation`` line after each validation (the stop it set).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import torch
from torch import nn

from sne_plugin.integrations.lightning import SNEPruningCallback
from sne_plugin.integrations.optuna import SNEPruner
from sne_plugin.testing import FirstWeightPredictor

# As in conftest.FIRST_WEIGHTS: two good trials finish, a bad one is pruned after its first
# epoch, a good one finishes.
FIRST_WEIGHTS = (0.9, 0.8, -0.9, 0.85)
DDP_TRIALS = (2, 3)
EPOCHS = 3


class Regression(pl.LightningModule):
    """Weights fixed (lr 0); it logs ``100 * rank + epoch``, so a value tells its rank."""

    def __init__(self, w0: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        with torch.no_grad():
            self.net[0].weight[0, 0] = w0  # what the pruner's predictor ranks by

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, _: int) -> None:
        self.log("score", float(100 * self.global_rank + self.current_epoch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


class RecordingCallback(SNEPruningCallback):
    """The real callback; each rank also writes down what it did (see the module doc)."""

    def __init__(self, trial: optuna.trial.Trial, log_dir: str) -> None:
        super().__init__(trial, monitor="score")
        self.log_dir = log_dir

    def _report(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> bool:
        stop = super()._report(trainer, pl_module, epoch)
        self._write(trainer, event="report", epoch=epoch, stop=stop)
        return stop

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        epoch = int(pl_module.current_epoch)
        self._write(trainer, event="validation", epoch=epoch, stop=bool(trainer.should_stop))

    def _write(self, trainer: pl.Trainer, **fields: object) -> None:
        line = {"trial": self.trial.number, "rank": trainer.global_rank, **fields}
        with open(Path(self.log_dir, f"rank{trainer.global_rank}.jsonl"), "a") as f:
            f.write(json.dumps(line) + "\n")


def loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 4, generator=g), torch.randn(16, 1))
    return torch.utils.data.DataLoader(data, batch_size=8)


def fit(module: pl.LightningModule, callback: SNEPruningCallback, devices: int) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
    )
    trainer.fit(module, loader(), loader())
    return trainer


def main(db: str, artifact_dir: str, log_dir: str) -> None:
    pruner = SNEPruner(
        FirstWeightPredictor(),
        n_warmup_steps=0,
        n_min_trials=2,
        learning_curve=0.0,
        artifact_dir=artifact_dir,
    )
    study = optuna.create_study(storage=f"sqlite:///{db}", direction="maximize", pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        callback = RecordingCallback(trial, log_dir)
        devices = 2 if trial.number in DDP_TRIALS else 1
        trainer = fit(Regression(trial.suggest_float("w0", -1.0, 1.0)), callback, devices)
        callback.check_pruned()
        return float(trainer.callback_metrics["score"])

    for w in FIRST_WEIGHTS:
        study.enqueue_trial({"w0": w})
    study.optimize(objective, n_trials=len(FIRST_WEIGHTS))


if __name__ == "__main__":
    warnings.simplefilter("ignore")  # Lightning's notes on workers and small data
    main(*sys.argv[1:])
