"""``SNEPruner``: prune trials whose weights predict a poor final value."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import rankdata

from sne_plugin.weights import NetworkWeights

from ._bank import PREDICTION_ATTR, WeightsBank, weight_steps
from ._curve import CurveEngine
from ._model import ModelLifecycle, curve_predictor, model_mode
from ._warn import warn

__all__ = ["SNEPruner"]

_REFERENCES = ("predictions", "values", "peers")
DEFAULT_LEARNING_CURVE = 0.5
DEFAULT_PERCENTILE = 50.0  # weights-only regressors
DEFAULT_CURVE_PERCENTILE = 80.0  # the pretrained predictor; chosen on the meta-zoo
_Key = tuple[int, int]  # (trial id, step)


class _Ranking(NamedTuple):
    """A trial's score and the reference scores it is ranked within, by ``direction``."""

    direction: StudyDirection
    own: float
    reference: np.ndarray


class SNEPruner(BasePruner):
    """Prune a trial when what its weights and its curve predict ranks poorly among its peers.

    Each trial hands its weights to the pruner with :func:`report_weights` (and its metric
    with ``trial.report``, as for any Optuna pruner).

    **Default: the pretrained predictor.** ``SNEPruner()`` ranks trials with the predictor
    shipped in the package (:func:`sne_plugin.pretrained.load_pretrained`), trained once on a
    meta-zoo of about two thousand networks and used zero-shot from the first trial: at step
    ``k`` it scores the trial from its weights at ``k`` and from where its intermediate values
    stand among its peers' (ranks only, so any metric and scale will do; see
    ``integrations/optuna/_curve.py``) and prunes it when that score ranks below the
    ``percentile``-th percentile of its peers' scores (default 80: the rule chosen on the
    meta-zoo, never on a benchmark search), once ``n_min_trials`` peers reached ``k`` or
    ended before it. Before that, from ``n_early_trials`` peers on, a lenient rule already
    stops the clearly worst: below the ``early_percentile``-th percentile of the few peers
    (default 25 from 3 peers, also chosen on the meta-zoo; ``None``: wait for
    ``n_min_trials``). These two apply to the pretrained (curve-aware) path only.
    As trials finish, a copy is fine-tuned on them every ``refit_every``
    (``online=False``: zero-shot only).

    **What the default promises** (measured, not guaranteed: BENCHMARKS.md, "Pruning searches
    it has never seen"). On 99 searches cut from the meta-zoo (16 or 32 trials of 8 epochs;
    ``python -m sne_plugin.research.bench.rule``), the default rule trained 43.1% of the
    unpruned epochs, lost 0.15 points of best accuracy on average, and stopped the trial that
    would have ended best in 7% of the searches. ``percentile`` is the lever: 75 stopped it in
    4% (46.1% of the epochs), 85 in 12% (41.4%), 90 in 20% (38.6%). On three searches of
    datasets and families it never saw, the default stopped the eventual best in 1 of 10
    seeds (1-D CNN), 2 of 10 (residual CNN) and 1 of 10 (tiny ViT).
    ``SNEPruner("pretrained")``, a :class:`~sne_plugin.pretrained.CurvePredictor` or the
    folder of a saved one work the same way. The options ``reference``, ``learning_curve``
    and ``max_train_networks`` below are for weights-only regressors and do not apply here.

    **Weights-only regressors.** With a regressor of your own (or ``online=True``), at a step
    ``k``, once ``k >= n_warmup_steps``, the pruner predicts the trial's final value from
    its weights at ``k`` and prunes it when that prediction ranks below the ``percentile``-th
    percentile of a reference set (direction-aware: above the ``100 - percentile``-th when
    minimizing), once the reference holds at least ``n_min_trials`` trials (default
    percentile 50). So ``percentile=75`` keeps about the best quarter. Weights with NaN or
    inf are pruned at once (in every mode). With too little evidence, or odd data
    (unreadable weights, a failing or non-finite prediction), it warns where useful and does
    not prune.

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

    Modes of a weights-only regressor:

    * pretrained: ``SNEPruner(regressor)`` with a fitted estimator (anything with
      ``predict(list_of_networks)``) or the path of a saved :class:`SNERegressor`;
    * online: ``SNEPruner(online=True)`` fits ``factory()`` (default: :func:`default_regressor`) on
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

    ``strict`` (default True): weights passed to :func:`report_weights` with parameters the
    readers cannot place raise an ``SNEError``; with ``strict=False`` those parameters are
    skipped, and a warning says so the first time.

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
        percentile: float | None = None,
        n_warmup_steps: int = 1,
        n_min_trials: int = 5,
        early_percentile: float | None = 25.0,
        n_early_trials: int = 3,
        refit_every: int = 4,
        fine_tune_epochs: int = 3,
        max_train_networks: int = 256,
        reference: str = "peers",
        learning_curve: float | None = None,
        artifact_dir: str | os.PathLike[str] | None = None,
        artifact_store: Any | None = None,
        strict: bool = True,
    ) -> None:
        if not isinstance(strict, bool):
            raise ValueError(f"strict must be True or False, but got {strict=}.")
        _check_counts(
            n_warmup_steps, n_min_trials, refit_every, fine_tune_epochs, max_train_networks
        )
        _check_reference(reference)
        if early_percentile is not None:
            _check_percentile(early_percentile)
        if (
            not isinstance(n_early_trials, int)
            or isinstance(n_early_trials, bool)
            or (n_early_trials < 1)
        ):
            raise ValueError(f"n_early_trials must be an int >= 1, but got {n_early_trials!r}.")
        predictor = curve_predictor(regressor, online, factory)
        if percentile is None:
            percentile = DEFAULT_PERCENTILE if predictor is None else DEFAULT_CURVE_PERCENTILE
        _check_percentile(percentile)
        mode = "pretrained" if predictor is not None else model_mode(regressor, online, factory)
        self._reference_kind = reference
        self._learning_curve = _checked_learning_curve(learning_curve, reference)
        self._percentile = float(percentile)
        self._n_warmup_steps = n_warmup_steps
        self._n_min_trials = n_min_trials
        self._model = ModelLifecycle(
            regressor,
            mode,
            factory=factory,
            n_warmup_steps=n_warmup_steps,
            n_min_trials=n_min_trials,
            refit_every=refit_every,
            fine_tune_epochs=fine_tune_epochs,
            max_train_networks=max_train_networks,
        )
        self._bank = WeightsBank(_artifact_store(artifact_dir, artifact_store))
        self._lock = threading.RLock()
        self._strict = strict
        self._skips_told = False
        self._predictions: dict[_Key, float] = {}
        self._curve: CurveEngine | None = None
        if predictor is not None:
            self._curve = CurveEngine(
                predictor,
                fine_tune=online is not False,
                percentile=self._percentile,
                n_warmup_steps=n_warmup_steps,
                n_min_trials=n_min_trials,
                early_percentile=early_percentile,
                n_early_trials=n_early_trials,
                refit_every=refit_every,
                fine_tune_epochs=fine_tune_epochs,
                read=self._weights,
                drop=self._drop_weights,
                record=_record,
            )

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (its lock is not), as strategies that start their workers by pickling the
        # trial, and with it the study's pruner, need: Lightning's ddp_spawn.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ Optuna's entry point
    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        """Whether to prune ``trial`` now (called by ``trial.should_prune()``).

        Never raises: an unforeseen failure (storage, artifacts, the model) warns and the
        trial is not pruned, so that the pruner is never the part that breaks a search.
        """
        with self._lock:
            try:
                return self._prune(study, trial)
            except Exception as exc:
                warn(
                    f"deciding on trial {trial.number} failed ({type(exc).__name__}: {exc}); "
                    "not pruning"
                )
                return False

    def _prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        if self._curve is not None:
            return self._curve.prune(study, trial)
        steps = weight_steps(trial)
        if not steps:
            return False
        step = steps[-1]
        known = self._model.frozen and (trial._trial_id, step) in self._predictions
        net = None if known else self._weights(trial, step)
        if net is None and not known:
            return False
        if net is not None and not net.is_finite():
            return True
        self._forget(trial._trial_id, step, before=True)
        if step < self._n_warmup_steps:
            return False
        completed = _completed(study)
        if self._too_few_completed(completed):
            return False
        model = self._current_model(study, completed)
        if model is None:
            return False
        predicted = self._predicted(study, model, trial, step, net)
        if predicted is None:
            return False
        ranking = self._ranking(study, model, trial, step, predicted, completed)
        if ranking is None:
            return False
        return _is_worse(ranking, self._percentile)

    # ------------------------------------------------------------------ public state
    @property
    def bank(self) -> WeightsBank:
        """Where this pruner keeps reported weights (memory, and the artifact store if any)."""
        return self._bank

    @property
    def training_trials_(self) -> tuple[int, ...]:
        """Numbers of the trials the online estimator was last fitted on (``()`` before)."""
        if self._curve is not None:
            return self._curve.training_trials
        return self._model.training_trials

    @property
    def n_refits_(self) -> int:
        """How many times the estimator was fitted or fine-tuned online."""
        if self._curve is not None:
            return self._curve.n_refits
        return self._model.n_refits

    # ------------------------------------------------------------------ weights and memory
    def _read_reported(self, obj: Any) -> NetworkWeights:
        """Weights handed to :func:`report_weights`, read with this pruner's ``strict``;
        without it, what cannot be read is skipped, and the first time is told in a warning."""
        from sne_plugin._strict import collected_skips
        from sne_plugin.readers import read_weights

        if self._strict:
            return read_weights(obj, canonical=True)
        with collected_skips() as skips:
            net = read_weights(obj, strict=False, canonical=True)
        with self._lock:
            tell = bool(skips) and not self._skips_told
            self._skips_told |= tell
        if tell:
            warn(
                f"strict=False: skipped parameters that cannot be read ({skips[0]}); later "
                "networks with skipped parameters are not reported again"
            )
        return net

    def _weights(self, trial: FrozenTrial, step: int) -> NetworkWeights | None:
        try:
            return self._bank.load(trial, step)
        except Exception as exc:
            warn(f"could not read the weights of trial {trial.number} at step {step} ({exc})")
            return None

    def _drop_weights(self, trial_id: int, step: int) -> None:
        self._bank.drop(trial_id, step)

    def _forget(self, trial_id: int, step: int, *, before: bool = False) -> None:
        """Drop weights at ``step`` (or before it) once a pretrained model no longer needs them.

        A pretrained model never changes, so neither does a prediction once made.
        """
        if self._model.frozen:
            self._bank.drop(trial_id, step, before=before)

    def _retain(
        self, study: optuna.study.Study, completed: list[FrozenTrial], used: list[int]
    ) -> None:
        """Keep in memory only the weights a refit or the reference may still read."""
        peers = self._reference_kind == "peers"
        states = (TrialState.RUNNING, TrialState.PRUNED) if peers else (TrialState.RUNNING,)
        running = study.get_trials(deepcopy=False, states=states)
        numbers = set(used)
        trained = completed if peers else [t for t in completed if t.number in numbers]
        self._bank.retain(t._trial_id for t in trained + running)

    # ------------------------------------------------------------------ the model
    def _too_few_completed(self, completed: list[FrozenTrial]) -> bool:
        """Online refits, and the references but 'peers', wait for ``n_min_trials`` COMPLETE."""
        needs_completed = not self._model.frozen or self._reference_kind != "peers"
        return needs_completed and len(completed) < self._n_min_trials

    def _current_model(self, study: optuna.study.Study, completed: list[FrozenTrial]) -> Any | None:
        """The estimator to predict with, refitted first when due (None: none fitted yet)."""
        if self._model.refit_due(len(completed)):
            self._refit(study, completed)
        return self._model.estimator

    def _refit(self, study: optuna.study.Study, completed: list[FrozenTrial]) -> None:
        data = self._model.begin_refit(completed, self._weights)
        self._retain(study, completed, data.trials)
        if self._model.refit(data):
            self._predictions = {}  # made by the estimator replaced

    # ------------------------------------------------------------------ predictions
    def _predicted(
        self,
        study: optuna.study.Study,
        model: Any,
        trial: FrozenTrial,
        step: int,
        net: NetworkWeights | None,
    ) -> float | None:
        """The prediction for ``trial`` at ``step``: cached, else made and recorded in storage."""
        key = (trial._trial_id, step)
        if key in self._predictions:
            return self._predictions[key]
        net = net if net is not None else self._weights(trial, step)
        value = None if net is None else _predict_one(model, net, trial.number)
        if value is None:
            return None
        self._cache(key, value)
        _record(study, trial, f"{PREDICTION_ATTR}{step}", value)
        return value

    def _cache(self, key: _Key, value: float) -> None:
        self._predictions[key] = value
        self._forget(*key)

    def _predictions_at(
        self, model: Any, trials: list[FrozenTrial], step: int
    ) -> list[float | None]:
        """Predictions for ``trials``' weights at their last reported step <= ``step``.

        Uncached ones are predicted in one batch (one call of ``model.predict``).
        """
        keys = [_key_at(other, step) for other in trials]
        todo = self._uncached(trials, keys)
        if todo:
            values = _predict_many(model, list(todo.values()))
            for key, value in zip(todo, values, strict=True):
                if value is not None:
                    self._cache(key, value)
        return [None if key is None else self._predictions.get(key) for key in keys]

    def _uncached(
        self, trials: list[FrozenTrial], keys: list[_Key | None]
    ) -> dict[_Key, NetworkWeights]:
        """The readable, finite weights behind ``keys`` that have no prediction yet."""
        todo: dict[_Key, NetworkWeights] = {}
        for other, key in zip(trials, keys, strict=True):
            if key is None or key in self._predictions or key in todo:
                continue
            net = self._weights(other, key[1])
            if net is not None and net.is_finite():
                todo[key] = net
        return todo

    # ------------------------------------------------------------------ the reference
    def _ranking(
        self,
        study: optuna.study.Study,
        model: Any,
        trial: FrozenTrial,
        step: int,
        predicted: float,
        completed: list[FrozenTrial],
    ) -> _Ranking | None:
        """``trial``'s score and the reference it ranks in (None: too small a reference)."""
        if self._reference_kind == "values":
            return _Ranking(study.direction, predicted, _final_values(completed))
        others = completed if self._reference_kind == "predictions" else _peers(study, trial, step)
        found = self._predictions_at(model, others, step)
        blended = self._blended(study.direction, trial, step, predicted, others, found)
        if blended is not None:
            return blended
        return self._among_predictions(study.direction, predicted, found)

    def _among_predictions(
        self, direction: StudyDirection, predicted: float, found: list[float | None]
    ) -> _Ranking | None:
        """``predicted`` within the reference's predictions (None: fewer than n_min_trials)."""
        reference = np.asarray([v for v in found if v is not None], dtype=float)
        if len(reference) < self._n_min_trials:
            return None
        return _Ranking(direction, predicted, reference)

    def _blended(
        self,
        direction: StudyDirection,
        trial: FrozenTrial,
        step: int,
        predicted: float,
        others: list[FrozenTrial],
        found: list[float | None],
    ) -> _Ranking | None:
        """Scores blending the prediction's rank with the intermediate value's rank.

        None without a blend, when ``trial`` reported no value yet, or when fewer than
        ``n_min_trials`` of the reference reported one at or before ``step``: the caller
        then ranks by the predictions alone.
        """
        if not self._learning_curve:
            return None
        own_value = _value_at(trial, step)
        if own_value is None:
            return None
        pairs = _valued_pairs(others, found, step)
        if len(pairs) < self._n_min_trials:
            return None
        return self._blend(direction, (predicted, own_value), pairs)

    def _blend(
        self, direction: StudyDirection, own: tuple[float, float], pairs: list[tuple[float, float]]
    ) -> _Ranking:
        """Rank (prediction, value) rows by each column; a row's score mixes its two ranks."""
        sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
        table = sign * np.asarray([own, *pairs], dtype=float)
        ranks = np.column_stack([rankdata(col) / len(col) for col in table.T])
        score = (1.0 - self._learning_curve) * ranks[:, 0] + self._learning_curve * ranks[:, 1]
        return _Ranking(StudyDirection.MAXIMIZE, float(score[0]), score[1:])  # higher is better


# ---------------------------------------------------------------------- argument checks
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


def _check_percentile(percentile: float) -> None:
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be between 0 and 100 inclusive, but got {percentile=}.")


def _check_reference(reference: str) -> None:
    if reference not in _REFERENCES:
        raise ValueError(f"reference must be one of {_REFERENCES}, but got {reference=}.")


def _checked_learning_curve(learning_curve: float | None, reference: str) -> float:
    """``learning_curve`` checked; None is the default (weights only with reference='values')."""
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
    return float(learning_curve)


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


# ---------------------------------------------------------------------- trials of the study
def _completed(study: optuna.study.Study) -> list[FrozenTrial]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in trials if t.value is not None and math.isfinite(t.value)]


def _final_values(completed: list[FrozenTrial]) -> np.ndarray:
    return np.asarray([t.value for t in completed], dtype=float)


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


def _key_at(trial: FrozenTrial, step: int) -> _Key | None:
    """``trial``'s id and its last step <= ``step`` with weights, if any."""
    steps = [s for s in weight_steps(trial) if s <= step]
    return (trial._trial_id, steps[-1]) if steps else None


def _value_at(trial: FrozenTrial, step: int) -> float | None:
    """The trial's intermediate value at its last reported step <= ``step`` (finite), if any."""
    steps = [s for s in trial.intermediate_values if s <= step]
    if not steps:
        return None
    value = trial.intermediate_values[max(steps)]
    return float(value) if value is not None and math.isfinite(value) else None


def _valued_pairs(
    trials: list[FrozenTrial], found: list[float | None], step: int
) -> list[tuple[float, float]]:
    """(prediction, intermediate value at ``step``) of each of ``trials`` that has both."""
    pairs = []
    for other, predicted in zip(trials, found, strict=True):
        value = _value_at(other, step)
        if predicted is not None and value is not None:
            pairs.append((predicted, value))
    return pairs


def _record(study: optuna.study.Study, trial: FrozenTrial, key: str, value: float) -> None:
    try:
        study._storage.set_trial_user_attr(trial._trial_id, key, float(value))
    except Exception as exc:  # e.g. the trial finished meanwhile
        warn(f"could not record {key} on trial {trial.number} ({exc})")


# ---------------------------------------------------------------------- predicting, comparing
def _predict_many(model: Any, nets: list[NetworkWeights]) -> list[float | None]:
    """One ``predict`` call for all ``nets``; None for each on failure or a non-finite value."""
    try:
        out = np.asarray(model.predict(nets), dtype=float).reshape(-1)
    except Exception as exc:
        warn(f"the regressor failed on {len(nets)} reference networks ({exc})")
        return [None] * len(nets)
    if out.shape != (len(nets),):
        warn(f"the regressor returned shape {out.shape} for {len(nets)} networks")
        return [None] * len(nets)
    return [float(v) if math.isfinite(v) else None for v in out]


def _predict_one(model: Any, net: NetworkWeights, number: int) -> float | None:
    try:
        out = np.asarray(model.predict([net]), dtype=float).reshape(-1)
    except Exception as exc:
        warn(f"the regressor failed on the weights of trial {number} ({exc}); not pruning")
        return None
    if out.shape != (1,) or not math.isfinite(out[0]):
        warn(f"the regressor returned {out!r} for trial {number}, expected one finite value")
        return None
    return float(out[0])


def _is_worse(ranking: _Ranking, percentile: float) -> bool:
    """Whether the score ranks below the ``percentile``-th percentile of its reference."""
    if ranking.direction == StudyDirection.MAXIMIZE:
        return bool(ranking.own < np.percentile(ranking.reference, percentile))
    return bool(ranking.own > np.percentile(ranking.reference, 100.0 - percentile))
