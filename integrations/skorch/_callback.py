"""``SNEPruningCallback``: report a skorch net's score and weights each epoch, prune."""

from __future__ import annotations

from typing import Any

import optuna
from skorch.callbacks import Callback

from sne_plugin.integrations.optuna import report_weights

__all__ = ["SNEPruningCallback"]


class SNEPruningCallback(Callback):
    """After each epoch: ``trial.report(net.history[-1, monitor], epoch)``, the module's
    weights to the study's :class:`~sne_plugin.integrations.optuna.SNEPruner`
    (:func:`~sne_plugin.integrations.optuna.report_weights`), and
    :class:`optuna.TrialPruned` when the trial should stop.

    The shape of optuna-integration's ``SkorchPruningCallback``, plus the weights. Epochs are
    counted from 0, as ``trial.report`` steps; ``monitor`` is any column of the history that
    skorch computes (``"valid_loss"``; ``"valid_acc"`` with ``EpochScoring``), in the
    direction of the study.

    >>> import optuna
    >>> from sne_plugin.integrations.optuna import SNEPruner
    >>> study = optuna.create_study(pruner=SNEPruner())
    >>> callback = SNEPruningCallback(study.ask(), monitor="valid_loss")
    >>> callback.monitor
    'valid_loss'
    """

    def __init__(self, trial: optuna.trial.Trial, monitor: str = "valid_loss") -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must name a history column, but got {monitor=}.")
        self.trial = trial
        self.monitor = monitor

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        history = net.history
        if not history or self.monitor not in history[-1]:
            raise ValueError(
                f"monitor={self.monitor!r} is not in the net's history after epoch "
                f"{len(history)}; columns: {sorted(history[-1]) if history else []}."
            )
        epoch = len(history) - 1
        self.trial.report(float(history[-1, self.monitor]), epoch)
        report_weights(self.trial, net.module_, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned by SNEPruner at epoch {epoch}")
