"""SNEPruningCallback in a real Lightning fit inside a real Optuna study (SQLite storage)."""

from __future__ import annotations

import warnings

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
