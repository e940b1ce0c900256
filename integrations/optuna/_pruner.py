"""``SNEPruner``: prune trials whose weights predict a poor final value."""

from __future__ import annotations

import copy
import math
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import rankdata

from sne_plugin.weights import NetworkWeights

from ._bank import PREDICTION_ATTR, WeightsBank, weight_steps

__all__ = ["SNEPruner", "default_regressor"]

_SNE = "SNEPruner"
_REFERENCES = ("predictions", "values", "peers")
DEFAULT_LEARNING_CURVE = 0.5


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
        loss=loss,
        random_state=0,
    )


class SNEPruner(BasePruner):
    """Prune a trial when the final value predicted from its current weights ranks poorly.

    Each trial hands its weights to the pruner with :func:`report_weights`. At a step ``k``
    of a trial, once ``k >= n_warmup_steps``, the pruner predicts the trial's final value from
    its weights at ``k`` and prunes it when that prediction ranks below the ``percentile``-th
    percentile of a reference set (direction-aware: above the ``100 - percentile``-th when
    minimizing), once the reference holds at least ``n_min_trials`` trials. So
    ``percentile=75`` keeps about the best quarter. Weights with NaN or inf are pruned at
    once. With too little evidence, or odd data (unreadable weights, a failing or non-finite
    prediction), it warns where useful and does not prune.

    ``reference`` says what the trial is ranked against:

    * ``"peers"`` (default): the same regressor's predictions for every other trial that
      reached step ``k`` or ended before it, PRUNED ones included (each at its last reported
      step ``<= k``). The rule then holds for a regressor that ranks well but is not
      calibrated, needs no COMPLETE trial in pretrained mode, and prunes about
      ``percentile`` % of the trials that reach the warm-up step, as the search goes on;
    * ``"predictions"``: the same, over COMPLETE trials only (survivors: stricter as the
      search improves, and it waits for ``n_min_trials`` COMPLETE ones);
    * ``"values"``: the COMPLETE trials' final values, which trusts the predictions' scale.

    ``learning_curve`` (0 to 1) blends in the trials' own intermediate values
    (``trial.report``) at step ``k``: each trial is scored by
    ``(1 - learning_curve) * rank(prediction) + learning_curve * rank(value)`` within the
    reference (a trial that reported no value yet, or one whose reference holds fewer than
    ``n_min_trials`` trials with values, is ranked by its prediction alone). The
    intermediate values are only read, never written, and must share the objective's
    direction (as for Optuna's own pruners). Default ``None``: 0.5, or 0 (weights only)
    with ``reference="values"``. Why 0.5: replayed on 30 recorded searches of the digits
    search (``python -m sne_plugin.research.bench.pruner_replay``), weights alone lost 0.77
    points of best accuracy at 46% of the epochs (``percentile=80``), the 0.5 blend 0.3 at 47%.

    Modes:

    * pretrained: ``SNEPruner(regressor)`` with a fitted estimator (anything with
      ``predict(list_of_networks)``) or the path of a saved :class:`SNERegressor`;
    * online: ``SNEPruner()`` fits ``factory()`` (default: :func:`default_regressor`) on
      the study's own COMPLETE trials
      (weights at each reported step ``>= n_warmup_steps`` -> the trial's final value) and
      refits whenever ``refit_every`` more trials have completed;
    * both: ``SNEPruner(regressor, online=True)`` starts from the fitted estimator and
      fine-tunes a copy of it with ``fine_tune_epochs`` calls of ``partial_fit`` per refit.

    Pruned trials are left out of the training data (their final value is unknown; Optuna
    stores their last intermediate value, the user's metric at an earlier step), and of the
    percentile unless ``reference="peers"``.

    Several processes: give every worker's pruner the same ``artifact_dir`` (or an Optuna
    ``artifact_store``); reported weights are then written there and their artifact ids and
    the pruner's predictions are recorded as trial user attributes (``sne:weights:<step>``,
    ``sne:prediction:<step>``), so each worker trains on the trials finished by all of them.
    Without an artifact store, weights stay in the reporting process. Threads of
    ``study.optimize(n_jobs=k)`` share one pruner; its state is guarded by a lock.

    Examples
    --------
    >>> import optuna
    >>> from sne_plugin.integrations.optuna import SNEPruner
    >>> pruner = SNEPruner(percentile=50.0, n_min_trials=4)
    >>> study = optuna.create_study(direction="maximize", pruner=pruner)
    >>> SNEPruner(percentile=120.0)
    Traceback (most recent call last):
    ...
    ValueError: percentile must be between 0 and 100 inclusive, but got percentile=120.0.
    """

    def __init__(
        self,
        regressor: Any | str | os.PathLike[str] | None = None,
        *,
        online: bool | None = None,
        factory: Callable[[], Any] | None = None,
        percentile: float = 50.0,
        n_warmup_steps: int = 1,
        n_min_trials: int = 5,
        refit_every: int = 4,
        fine_tune_epochs: int = 3,
        max_train_networks: int = 256,
        reference: str = "peers",
        learning_curve: float | None = None,
        artifact_dir: str | os.PathLike[str] | None = None,
        artifact_store: Any | None = None,
    ) -> None:
        online = regressor is None if online is None else online
        _check_counts(
            n_warmup_steps, n_min_trials, refit_every, fine_tune_epochs, max_train_networks
        )
        _check_mode(regressor, online, factory, percentile)
        if reference not in _REFERENCES:
            raise ValueError(f"reference must be one of {_REFERENCES}, but got {reference=}.")
        if learning_curve is None:
            learning_curve = 0.0 if reference == "values" else DEFAULT_LEARNING_CURVE
        if not 0.0 <= learning_curve <= 1.0:
            raise ValueError(f"learning_curve must be between 0 and 1, but got {learning_curve=}.")
        if learning_curve and reference == "values":
            raise ValueError(
                "learning_curve ranks intermediate values at the same step, which "
                f"reference='values' does not have; use 'peers' or 'predictions', but got "
                f"{reference=} with {learning_curve=}."
            )
        self._reference_kind = reference
        self._learning_curve = float(learning_curve)
        self._percentile = float(percentile)
        self._n_warmup_steps = n_warmup_steps
        self._n_min_trials = n_min_trials
        self._refit_every = refit_every
        self._fine_tune_epochs = fine_tune_epochs
        self._max_train_networks = max_train_networks
        self._online = online
        self._factory = factory
        self._model: Any | None = _load_regressor(regressor)
        self._pretrained = self._model is not None
        self._bank = WeightsBank(_artifact_store(artifact_dir, artifact_store))
        self._lock = threading.RLock()
        self._n_fitted = 0 if self._pretrained else -1
        self._predictions: dict[tuple[int, int], float] = {}
        self.training_trials_: tuple[int, ...] = ()
        self.n_refits_ = 0

    # ------------------------------------------------------------------ Optuna's entry point
    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        """Whether to prune ``trial`` now (called by ``trial.should_prune()``)."""
        with self._lock:
            return self._prune(study, trial)

    def _prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        steps = weight_steps(trial)
        if not steps:
            return False
        step = steps[-1]
        net = None
        if self._online or (trial._trial_id, step) not in self._predictions:
            net = self._weights(trial, step)
            if net is None:
                return False
            if not net.is_finite():
                return True
        if not self._online:  # the model never changes: earlier weights are no longer needed
            self._bank.drop(trial._trial_id, step, before=True)
        if step < self._n_warmup_steps:
            return False
        completed = _completed(study)
        needs_completed = self._online or self._reference_kind != "peers"
        if needs_completed and len(completed) < self._n_min_trials:
            return False
        model = self._current_model(study, completed)
        if model is None:
            return False
        predicted = self._predicted(study, model, trial, step, net)
        if predicted is None:
            return False
        if self._reference_kind == "values":
            finals = np.asarray([t.value for t in completed], dtype=float)
            return _is_worse(study.direction, predicted, finals, self._percentile)
        others = completed if self._reference_kind == "predictions" else _peers(study, trial, step)
        found = self._predictions_at(model, others, step)
        if self._learning_curve:
            own = _value_at(trial, step)
            if own is not None:
                blended = self._blended_is_worse(study, predicted, own, others, found, step)
                if blended is not None:
                    return blended
        reference = np.asarray([v for v in found if v is not None], dtype=float)
        if len(reference) < self._n_min_trials:
            return False
        return _is_worse(study.direction, predicted, reference, self._percentile)

    def _blended_is_worse(
        self,
        study: optuna.study.Study,
        predicted: float,
        own_value: float,
        others: list[FrozenTrial],
        found: list[float | None],
        step: int,
    ) -> bool | None:
        """Rank by a blend of the prediction's rank and the intermediate value's rank.

        None when fewer than ``n_min_trials`` of the reference reported a value at or
        before ``step``: the caller then ranks by the predictions alone.
        """
        pairs = [(p, _value_at(t, step)) for t, p in zip(others, found, strict=True)]
        pairs = [(p, v) for p, v in pairs if p is not None and v is not None]
        if len(pairs) < self._n_min_trials:
            return None
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        table = sign * np.asarray([(predicted, own_value), *pairs], dtype=float)
        ranks = np.column_stack([rankdata(col) / len(col) for col in table.T])
        score = (1.0 - self._learning_curve) * ranks[:, 0] + self._learning_curve * ranks[:, 1]
        return bool(score[0] < np.percentile(score[1:], self._percentile))

    # ------------------------------------------------------------------ used by report_weights
    @property
    def bank(self) -> WeightsBank:
        """Where this pruner keeps reported weights (memory, and the artifact store if any)."""
        return self._bank

    # ------------------------------------------------------------------ steps of prune()
    def _weights(self, trial: FrozenTrial, step: int) -> NetworkWeights | None:
        try:
            return self._bank.load(trial, step)
        except Exception as exc:
            _warn(f"could not read the weights of trial {trial.number} at step {step} ({exc})")
            return None

    def _predicted(
        self,
        study: optuna.study.Study,
        model: Any,
        trial: FrozenTrial,
        step: int,
        net: NetworkWeights | None,
    ) -> float | None:
        key = (trial._trial_id, step)
        if key not in self._predictions:
            net = net if net is not None else self._weights(trial, step)
            value = None if net is None else _predict_one(model, net, trial.number)
            if value is None:
                return None
            self._cache(key, value)
            _record(study, trial, f"{PREDICTION_ATTR}{step}", value)
        return self._predictions[key]

    def _cache(self, key: tuple[int, int], value: float) -> None:
        """Keep a prediction; a pretrained model's never changes, so its weights can go."""
        self._predictions[key] = value
        if not self._online:
            self._bank.drop(*key)

    def _predictions_at(
        self, model: Any, trials: list[FrozenTrial], step: int
    ) -> list[float | None]:
        """Predictions for ``trials``' weights at their last reported step <= ``step``.

        Uncached ones are predicted in one batch (one call of ``model.predict``).
        """
        keys: list[tuple[int, int] | None] = []
        todo: dict[tuple[int, int], tuple[FrozenTrial, NetworkWeights]] = {}
        for other in trials:
            steps = [s for s in weight_steps(other) if s <= step]
            key = (other._trial_id, steps[-1]) if steps else None
            keys.append(key)
            if key is None or key in self._predictions or key in todo:
                continue
            net = self._weights(other, key[1])
            if net is not None and net.is_finite():
                todo[key] = (other, net)
        if todo:
            values = _predict_many(model, [net for _, net in todo.values()])
            for key, value in zip(todo, values, strict=True):
                if value is not None:
                    self._cache(key, value)
        return [None if key is None else self._predictions.get(key) for key in keys]

    def _current_model(self, study: optuna.study.Study, completed: list[FrozenTrial]) -> Any | None:
        if not self._online:
            return self._model
        if self._n_fitted < 0 or len(completed) - self._n_fitted >= self._refit_every:
            self._refit(study, completed)
        return self._model

    def _refit(self, study: optuna.study.Study, completed: list[FrozenTrial]) -> None:
        self._n_fitted = len(completed)  # also on failure: retry only after refit_every more
        X, y, used = self._training_data(completed)
        others = (
            (TrialState.RUNNING, TrialState.PRUNED)
            if self._reference_kind == "peers"
            else (TrialState.RUNNING,)
        )
        running = study.get_trials(deepcopy=False, states=others)
        keep = (
            completed + running
            if self._reference_kind == "peers"
            else [t for t in completed if t.number in set(used)] + running
        )
        self._bank.retain(t._trial_id for t in keep)
        if len(set(used)) < self._n_min_trials:
            return
        try:
            model = self._fitted(X, y)
        except Exception as exc:
            _warn(f"fitting the regressor on {len(X)} networks failed ({exc}); not pruning")
            return
        self._model, self._predictions = model, {}
        self.training_trials_ = tuple(sorted(set(used)))
        self.n_refits_ += 1

    def _fitted(self, X: list[NetworkWeights], y: list[float]) -> Any:
        if not self._pretrained:
            return self._new_estimator(y).fit(X, y)
        model: Any = self._model if self.n_refits_ else copy.deepcopy(self._model)
        for _ in range(self._fine_tune_epochs):
            model.partial_fit(X, y)
        return model

    def _new_estimator(self, y: list[float]) -> Any:
        if self._factory is not None:
            return self._factory()
        return default_regressor(loss="bce" if min(y) >= 0.0 and max(y) <= 1.0 else "mse")

    def _training_data(
        self, completed: list[FrozenTrial]
    ) -> tuple[list[NetworkWeights], list[float], list[int]]:
        X: list[NetworkWeights] = []
        y: list[float] = []
        used: list[int] = []
        for trial in completed:
            for step in weight_steps(trial):
                net = self._weights(trial, step) if step >= self._n_warmup_steps else None
                if net is not None and net.is_finite():
                    X.append(net)
                    y.append(float(trial.value))  # type: ignore[arg-type]
                    used.append(trial.number)
        keep = _evenly(len(X), self._max_train_networks)
        return [X[i] for i in keep], [y[i] for i in keep], [used[i] for i in keep]


# ---------------------------------------------------------------------- helpers
def _check_counts(
    n_warmup_steps: int,
    n_min_trials: int,
    refit_every: int,
    fine_tune_epochs: int,
    max_train_networks: int,
) -> None:
    if n_warmup_steps < 0:
        raise ValueError(f"Number of warmup steps cannot be negative, but got {n_warmup_steps=}.")
    if n_min_trials < 1:
        raise ValueError(
            f"Number of trials for pruning must be at least 1, but got {n_min_trials=}."
        )
    if refit_every < 1:
        raise ValueError(f"refit_every must be at least 1, but got {refit_every=}.")
    if fine_tune_epochs < 1:
        raise ValueError(f"fine_tune_epochs must be at least 1, but got {fine_tune_epochs=}.")
    if max_train_networks < 1:
        raise ValueError(f"max_train_networks must be at least 1, but got {max_train_networks=}.")


def _check_mode(regressor: Any, online: bool, factory: Any, percentile: float) -> None:
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be between 0 and 100 inclusive, but got {percentile=}.")
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


def _artifact_store(artifact_dir: Any, artifact_store: Any) -> Any | None:
    if artifact_dir is not None and artifact_store is not None:
        raise ValueError(
            f"Give artifact_dir or artifact_store, not both, but got {artifact_dir=} "
            f"and {artifact_store=}."
        )
    if artifact_dir is None:
        return artifact_store
    os.makedirs(artifact_dir, exist_ok=True)
    return FileSystemArtifactStore(os.fspath(artifact_dir))


def _completed(study: optuna.study.Study) -> list[FrozenTrial]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in trials if t.value is not None and math.isfinite(t.value)]


def _peers(study: optuna.study.Study, trial: FrozenTrial, step: int) -> list[FrozenTrial]:
    """Every other trial that got as far as ``step``, or ended before it (COMPLETE or PRUNED)."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    peers = []
    for other in study.get_trials(deepcopy=False, states=states):
        if other._trial_id == trial._trial_id:
            continue
        value = other.value if other.state == TrialState.COMPLETE else 0.0
        if value is None or not math.isfinite(value):
            continue
        steps = weight_steps(other)
        if steps and (other.state != TrialState.RUNNING or steps[-1] >= step):
            peers.append(other)
    return peers


def _value_at(trial: FrozenTrial, step: int) -> float | None:
    """The trial's intermediate value at its last reported step <= ``step`` (finite), if any."""
    steps = [s for s in trial.intermediate_values if s <= step]
    if not steps:
        return None
    value = trial.intermediate_values[max(steps)]
    return float(value) if value is not None and math.isfinite(value) else None


def _predict_many(model: Any, nets: list[NetworkWeights]) -> list[float | None]:
    """One ``predict`` call for all ``nets``; None for each on failure or a non-finite value."""
    try:
        out = np.asarray(model.predict(nets), dtype=float).reshape(-1)
    except Exception as exc:
        _warn(f"the regressor failed on {len(nets)} reference networks ({exc})")
        return [None] * len(nets)
    if out.shape != (len(nets),):
        _warn(f"the regressor returned shape {out.shape} for {len(nets)} networks")
        return [None] * len(nets)
    return [float(v) if math.isfinite(v) else None for v in out]


def _predict_one(model: Any, net: NetworkWeights, number: int) -> float | None:
    try:
        out = np.asarray(model.predict([net]), dtype=float).reshape(-1)
    except Exception as exc:
        _warn(f"the regressor failed on the weights of trial {number} ({exc}); not pruning")
        return None
    if out.shape != (1,) or not math.isfinite(out[0]):
        _warn(f"the regressor returned {out!r} for trial {number}, expected one finite value")
        return None
    return float(out[0])


def _record(study: optuna.study.Study, trial: FrozenTrial, key: str, value: float) -> None:
    try:
        study._storage.set_trial_user_attr(trial._trial_id, key, float(value))
    except Exception as exc:  # e.g. the trial finished meanwhile
        _warn(f"could not record {key} on trial {trial.number} ({exc})")


def _is_worse(
    direction: StudyDirection, predicted: float, values: np.ndarray, percentile: float
) -> bool:
    if direction == StudyDirection.MAXIMIZE:
        return bool(predicted < np.percentile(values, percentile))
    return bool(predicted > np.percentile(values, 100.0 - percentile))


def _evenly(n: int, cap: int) -> list[int]:
    if n <= cap:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, cap).round()})


def _warn(message: str) -> None:
    warnings.warn(f"{_SNE}: {message}", UserWarning, stacklevel=3)
