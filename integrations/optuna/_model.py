"""The estimator an :class:`SNEPruner` predicts with, and when it is (re)fitted.

One :data:`Mode` says which:

* ``"pretrained"``: a fitted estimator (or the path of a saved :class:`SNERegressor`), never
  changed;
* ``"online"``: ``factory()`` (default: :func:`default_regressor`) fitted on the study's
  COMPLETE trials, refitted whenever ``refit_every`` more trials have completed;
* ``"fine-tune"``: a copy of a fitted estimator, tuned on the same schedule with
  ``fine_tune_epochs`` calls of ``partial_fit`` per refit.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from optuna.trial import FrozenTrial

from sne_plugin.weights import NetworkWeights

from ._bank import weight_steps
from ._warn import warn

__all__ = ["Mode", "ModelLifecycle", "TrainingData", "default_regressor", "model_mode"]

Mode = Literal["pretrained", "online", "fine-tune"]
ReadWeights = Callable[[FrozenTrial, int], NetworkWeights | None]


def default_regressor(*, loss: str = "bce") -> Any:
    """The estimator online mode trains by default: a small, fast :class:`SNERegressor`.

    Small because it is refitted inside ``should_prune()`` while the search waits: one head,
    width 16, chunks of 64, 15 epochs, no invariance regulariser and no early stopping. The
    pruner picks ``loss="bce"`` when every target lies in [0, 1] (accuracies), else ``"mse"``.

    >>> default_regressor().epochs
    15
    """
    from sne_plugin.regressor import SNERegressor

    return SNERegressor(
        chunk_size=64,
        width=16,
        heads=1,
        epochs=15,
        batch_size=32,
        lr=3e-3,
        invariance_weight=0.0,
        validation_fraction=0.0,
        stats_boost=False,  # refitted often on few trials: the network alone, as measured
        loss=loss,
        random_state=0,
        verbose=False,  # refitted inside should_prune(): no bar in the middle of a search
    )


PRETRAINED = "pretrained"
"""``SNEPruner("pretrained")``: the predictor shipped with the package."""


def curve_predictor(regressor: Any, online: bool | None, factory: Any) -> Any | None:
    """The curve-aware predictor the arguments ask for, or None for a weights-only regressor.

    ``SNEPruner()`` and ``SNEPruner(online=False)`` (no regressor, no ``factory``) and
    ``"pretrained"`` mean the shipped predictor (fine-tuned, or zero-shot with
    ``online=False``); ``SNEPruner(online=True)`` is online-only; a
    :class:`~sne_plugin.pretrained.CurvePredictor` or the folder of a saved one is used as
    given.
    """
    from sne_plugin.pretrained import CurvePredictor, load_pretrained

    if regressor is None:
        return load_pretrained() if not online and factory is None else None
    if isinstance(regressor, CurvePredictor):
        return regressor
    if isinstance(regressor, str) and regressor == PRETRAINED:
        return load_pretrained()
    if _is_path(regressor) and os.path.isdir(regressor):
        return CurvePredictor.load(regressor)
    return None


def model_mode(regressor: Any, online: bool | None, factory: Any) -> Mode:
    """The mode :class:`SNEPruner`'s arguments ask for; ``online=None`` means "without a regressor".

    >>> model_mode(None, None, None), model_mode("regressor.sne", True, None)
    ('online', 'fine-tune')
    """
    online = regressor is None if online is None else online
    _check_model(regressor, online, factory)
    if regressor is None:
        return "online"
    return "fine-tune" if online else "pretrained"


def _check_model(regressor: Any, online: bool, factory: Any) -> None:
    if regressor is None and not online:
        raise ValueError(f"Without a regressor the pruner must learn online, but got {online=}.")
    if factory is not None and not callable(factory):
        raise ValueError(f"factory must be a callable returning an estimator, but got {factory=}.")
    if _is_path(regressor):
        return
    if regressor is not None and not callable(getattr(regressor, "predict", None)):
        raise ValueError(
            f"regressor must be a fitted estimator with predict() or a path, but got {regressor=}."
        )
    if regressor is not None and online and not callable(getattr(regressor, "partial_fit", None)):
        raise ValueError(
            f"Fine-tuning a pretrained regressor online needs partial_fit(), but got {regressor=}."
        )


def _is_path(obj: object) -> bool:
    return isinstance(obj, (str, os.PathLike))


def _load_regressor(regressor: Any) -> Any:
    if not _is_path(regressor):
        return regressor
    from sne_plugin.regressor import SNERegressor

    return SNERegressor.load(regressor)


@dataclass(frozen=True)
class TrainingData:
    """Networks, their trials' final values, and the number of the trial each comes from."""

    X: list[NetworkWeights]
    y: list[float]
    trials: list[int]


class ModelLifecycle:
    """The estimator of one :class:`SNEPruner` in its :data:`Mode`, and its refit schedule.

    A refit is two steps, so that the pruner can evict memory in between: :meth:`begin_refit`
    gathers the training data, :meth:`refit` fits on it. Not thread-safe: the pruner's lock
    guards it.

    >>> lifecycle = ModelLifecycle(
    ...     None, "online", factory=None, n_warmup_steps=1, n_min_trials=5, refit_every=4,
    ...     fine_tune_epochs=3, max_train_networks=256)
    >>> lifecycle.estimator, lifecycle.refit_due(0)
    (None, True)
    """

    def __init__(
        self,
        regressor: Any,
        mode: Mode,
        *,
        factory: Callable[[], Any] | None,
        n_warmup_steps: int,
        n_min_trials: int,
        refit_every: int,
        fine_tune_epochs: int,
        max_train_networks: int,
    ) -> None:
        self.mode = mode
        self.estimator: Any | None = _load_regressor(regressor)
        self._factory = factory
        self._n_warmup_steps = n_warmup_steps
        self._n_min_trials = n_min_trials
        self._refit_every = refit_every
        self._fine_tune_epochs = fine_tune_epochs
        self._max_train_networks = max_train_networks
        self._attempted_at: int | None = None  # COMPLETE trials at the last refit attempt
        self.training_trials: tuple[int, ...] = ()
        self.n_refits = 0

    @property
    def frozen(self) -> bool:
        """Whether the estimator never changes (pretrained mode), nor then its predictions."""
        return self.mode == "pretrained"

    def refit_due(self, n_completed: int) -> bool:
        """Whether to refit now that ``n_completed`` trials are COMPLETE."""
        if self.frozen:
            return False
        if self._attempted_at is None:  # online has nothing to predict with yet
            return self.mode == "online" or n_completed >= self._refit_every
        return n_completed - self._attempted_at >= self._refit_every

    def begin_refit(self, completed: list[FrozenTrial], read: ReadWeights) -> TrainingData:
        """Note the attempt (also on failure: retry only after ``refit_every`` more trials) and
        gather the training data, reading weights with ``read``."""
        self._attempted_at = len(completed)
        examples = list(self._examples(completed, read))
        kept = [examples[i] for i in _evenly(len(examples), self._max_train_networks)]
        return TrainingData([e[0] for e in kept], [e[1] for e in kept], [e[2] for e in kept])

    def _examples(
        self, completed: list[FrozenTrial], read: ReadWeights
    ) -> Iterator[tuple[NetworkWeights, float, int]]:
        """Weights at each reported step ``>= n_warmup_steps`` -> the trial's final value."""
        for trial in completed:
            for step in weight_steps(trial):
                net = read(trial, step) if step >= self._n_warmup_steps else None
                if net is not None and net.is_finite():
                    yield net, float(trial.value), trial.number  # type: ignore[arg-type]

    def refit(self, data: TrainingData) -> bool:
        """Fit on ``data`` if it spans ``n_min_trials`` trials; whether the estimator changed."""
        trials = set(data.trials)
        if len(trials) < self._n_min_trials:
            return False
        try:
            estimator = self._fitted(data.X, data.y)
        except Exception as exc:
            warn(f"fitting the regressor on {len(data.X)} networks failed ({exc}); not pruning")
            return False
        self.estimator = estimator
        self.training_trials = tuple(sorted(trials))
        self.n_refits += 1
        return True

    def _fitted(self, X: list[NetworkWeights], y: list[float]) -> Any:
        if self.mode == "online":
            return self._new_estimator(y).fit(X, y)
        model: Any = self.estimator if self.n_refits else copy.deepcopy(self.estimator)
        for _ in range(self._fine_tune_epochs):
            model.partial_fit(X, y)
        return model

    def _new_estimator(self, y: list[float]) -> Any:
        if self._factory is not None:
            return self._factory()
        return default_regressor(loss="bce" if min(y) >= 0.0 and max(y) <= 1.0 else "mse")


def _evenly(n: int, cap: int) -> list[int]:
    if n <= cap:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, cap).round()})
