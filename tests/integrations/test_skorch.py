"""SNEPruningCallback in a real skorch fit inside a real Optuna study (SQLite storage)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

skorch = pytest.importorskip("skorch")
optuna = pytest.importorskip("optuna")

from sne_plugin.integrations.skorch import SNEPruningCallback  # noqa: E402


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


def _module(w0: float) -> nn.Module:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        module[0].weight[0, 0] = w0  # what the test's predictor ranks by
    return module


def test_prunes_a_skorch_fit(run_study) -> None:  # type: ignore[no-untyped-def]
    X, y = torch.randn(32, 4), torch.randn(32, 1)

    def objective(trial: optuna.Trial) -> float:
        net = skorch.NeuralNetRegressor(
            _module(trial.suggest_float("w0", -1.0, 1.0)),
            max_epochs=3,
            lr=0.0,  # the weights stay as set, so the prediction does too
            train_split=None,
            callbacks=[SNEPruningCallback(trial, monitor="train_loss")],
            verbose=0,
        )
        net.fit(X, y)
        return -float(net.history[-1, "train_loss"])

    study = run_study(objective)
    assert states(study) == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    pruned = study.trials[2]
    assert list(pruned.intermediate_values) == [0]
    assert "sne:weights:0" in pruned.user_attrs
    assert list(study.trials[0].intermediate_values) == [0, 1, 2]


def test_a_missing_column_is_named() -> None:
    study = optuna.create_study()
    net = skorch.NeuralNetRegressor(
        _module(0.0),
        max_epochs=1,
        train_split=None,
        callbacks=[SNEPruningCallback(study.ask(), monitor="valid_acc")],
        verbose=0,
    )
    with pytest.raises(ValueError, match=r"monitor='valid_acc' is not in the net's history"):
        net.fit(torch.randn(8, 4), torch.randn(8, 1))
    with pytest.raises(ValueError, match="monitor must name a history column"):
        SNEPruningCallback(study.ask(), monitor="")
