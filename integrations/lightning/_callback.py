"""``SNEPruningCallback`` for Lightning: report the monitored metric and the weights after
each validation, prune."""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
import optuna

from sne_plugin.integrations.optuna import report_weights

__all__ = ["PRUNED_AT_ATTR", "SNEPruningCallback"]

PRUNED_AT_ATTR = "sne:pruned_at"
"""The trial's user attribute holding the epoch at which the callback stopped it."""


class SNEPruningCallback(pl.Callback):
    """After each validation epoch: ``trial.report(callback_metrics[monitor], epoch)``, the
    module's weights to the study's :class:`~sne_plugin.integrations.optuna.SNEPruner`
    (:func:`~sne_plugin.integrations.optuna.report_weights`), and a stop when the trial
    should be pruned.

    In one process the stop is :class:`optuna.TrialPruned`, raised from ``trainer.fit``.
    Under DDP, only rank 0 reports and asks (the ranks' weights are equal after each step;
    give every process the same RDB storage, as optuna's own Lightning callback asks); its
    answer is broadcast, every rank sets ``trainer.should_stop``, and the objective calls
    :meth:`check_pruned` after ``trainer.fit`` to raise ``TrialPruned``. Rank 0 records the
    epoch it stopped at as the trial's user attribute ``sne:pruned_at``, which is how
    :meth:`check_pruned` learns of it when the ranks ran in processes of their own
    (``strategy="ddp_spawn"``: they get pickled copies of the trial and of the study's pruner;
    give the pruner an ``artifact_dir`` so that weights reported there outlive them).

    >>> import optuna
    >>> from sne_plugin.integrations.optuna import SNEPruner
    >>> study = optuna.create_study(direction="maximize", pruner=SNEPruner())
    >>> callback = SNEPruningCallback(study.ask(), monitor="val_acc")
    >>> callback.check_pruned()  # nothing pruned yet: returns quietly
    """

    def __init__(self, trial: optuna.trial.Trial, monitor: str) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must name a logged metric, but got {monitor=}.")
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = int(pl_module.current_epoch)
        stop = False
        if trainer.is_global_zero:
            stop = self._report(trainer, pl_module, epoch)
        stop = bool(trainer.strategy.broadcast(stop))
        if not stop:
            return
        self.pruned_at = epoch
        if trainer.is_global_zero:
            self.trial.set_user_attr(PRUNED_AT_ATTR, epoch)
        trainer.should_stop = True
        if trainer.world_size == 1:
            raise optuna.TrialPruned(f"pruned by SNEPruner at epoch {epoch}")

    def _report(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> bool:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            warnings.warn(
                f"SNEPruningCallback: metric {self.monitor!r} was not logged at epoch {epoch}; "
                f"logged: {sorted(trainer.callback_metrics)}. Not reporting this epoch.",
                stacklevel=2,
            )
            return False
        self.trial.report(float(value), epoch)
        report_weights(self.trial, pl_module, epoch)
        return bool(self.trial.should_prune())

    def check_pruned(self) -> None:
        """Raise :class:`optuna.TrialPruned` if training was stopped by this callback (DDP),
        here or, under ``ddp_spawn``, in the worker process of rank 0 (read from storage)."""
        epoch = self.pruned_at
        if epoch is None:
            attrs = self.trial.storage.get_trial_user_attrs(self.trial._trial_id)
            epoch = attrs.get(PRUNED_AT_ATTR)
        if epoch is not None:
            raise optuna.TrialPruned(f"pruned by SNEPruner at epoch {epoch}")

    def state_dict(self) -> dict[str, Any]:
        return {"pruned_at": self.pruned_at}
