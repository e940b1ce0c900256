"""How :class:`SNEPruner` ranks trials with a curve-aware predictor (the pretrained default).

A :class:`~sne_plugin.pretrained.CurvePredictor` scores a trial from its weights and from where
its intermediate values stand among its peers' (:mod:`sne_plugin.curve`). Those ranks change
as trials arrive, so its scores are not cached per (trial, step) as a weights-only
regressor's are; the weights' embeddings are, and re-scoring the peers then runs only the
predictor's head. At step ``k`` of a trial:

1. the peers are the other trials that reached ``k`` or ended before it (COMPLETE or PRUNED),
   each at its last step ``<= k`` with both an intermediate value and weights;
2. each row's curve features are its value there, its previous value and its best so far,
   ranked among the rows (values oriented by the study's direction), and its progress: that
   step over the largest last step of the COMPLETE trials (unknown before one completes);
3. the trial is pruned when its score ranks below the ``percentile``-th percentile of its
   peers' scores, once there are ``n_min_trials`` peers; with fewer, but at least
   ``n_early_trials``, below the ``early_percentile``-th (a lenient rule for the first
   trials of a search: by default 25 from 3 peers; ``None`` waits for ``n_min_trials``).

Fine-tuning (``online=True``, the default): every ``refit_every`` more finished trials, a copy
of the shipped predictor is tuned on the study's finished trials: each one's rows at every
step it reported (features among the trials with a value at that step) -> the percentile
rank of its final value among the finished trials; a PRUNED trial counts at its last value.

Each decision is recorded as the trial's user attribute ``sne:rank:<step>`` (the share of its
peers it scored above), so that ``optuna-dashboard`` and
:func:`sne_plugin.plots.plot_pruning_timeline` show where each trial stood.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sne_plugin.curve import curve_features, percentile_ranks
from sne_plugin.weights import NetworkWeights

from ._bank import weight_steps
from ._warn import warn

__all__ = ["RANK_ATTR", "CurveEngine"]

RANK_ATTR = "sne:rank:"
"""User attribute ``sne:rank:<step>``: the share of the trial's peers it scored above at
that step (1: above all of them); the rule prunes it when that is low (about below
``percentile`` / 100)."""

_Key = tuple[int, int]
_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


@dataclass(frozen=True)
class _Row:
    """One trial at one step: where its weights are and its curve so far."""

    trial: FrozenTrial
    key: _Key  # (trial id, weights step)
    step: int  # the step of its value
    now: float
    prev: float
    best: float


class CurveEngine:
    """Ranks and prunes with a curve-aware predictor; fine-tunes a copy of it if asked."""

    def __init__(
        self,
        predictor: Any,
        *,
        fine_tune: bool,
        percentile: float,
        n_warmup_steps: int,
        n_min_trials: int,
        refit_every: int,
        early_percentile: float | None = None,
        n_early_trials: int = 3,
        fine_tune_epochs: int,
        read: Callable[[FrozenTrial, int], NetworkWeights | None],
        drop: Callable[[int, int], None],
        record: Callable[[optuna.study.Study, FrozenTrial, str, float], None] | None = None,
    ) -> None:
        self.base = predictor
        self.current = predictor
        self.fine_tune = fine_tune
        self.percentile = percentile
        self.n_warmup_steps = n_warmup_steps
        self.n_min_trials = n_min_trials
        self.early_percentile = early_percentile
        self.n_early_trials = n_early_trials
        self.refit_every = refit_every
        self.fine_tune_epochs = fine_tune_epochs
        self._read = read
        self._drop = drop
        self._record = record
        self._embeddings: dict[_Key, np.ndarray] = {}
        self._unreadable: set[_Key] = set()
        self._fitted_at = 0
        self.n_refits = 0
        self.training_trials: tuple[int, ...] = ()
        # Embeddings of a weight-statistics model never change; an SNE encoder's do on a refit.
        self._fixed_embeddings = hasattr(predictor.regressor, "fit_summaries")

    # ------------------------------------------------------------------ the decision
    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        steps = weight_steps(trial)
        if not steps:
            return False
        step = steps[-1]
        net = None
        if (trial._trial_id, step) not in self._embeddings:
            net = self._read(trial, step)
            if net is None:
                return False
            if not net.is_finite():
                return True
        if step < self.n_warmup_steps:
            return False
        trials = study.get_trials(deepcopy=False, states=_STATES)
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        own = _row(trial, step, sign)
        if own is None or own.key[1] != step:
            return False
        peers = [
            r
            for t in trials
            if t._trial_id != trial._trial_id
            for r in [_peer(t, step, sign)]
            if r is not None
        ]
        if len(peers) < self._fewest():
            return False
        self._maybe_fine_tune(trials, sign)
        rows = [own, *peers]
        z = self._embed(rows, {own.key: net} if net is not None else {})
        keep = [i for i, r in enumerate(rows) if r.key in z]
        if 0 not in keep or len(keep) - 1 < self._fewest():
            return False
        percentile = self.percentile
        if len(keep) - 1 < self.n_min_trials and self.early_percentile is not None:
            percentile = self.early_percentile
        rows = [rows[i] for i in keep]
        side = _features(rows, _planned(trials))
        try:
            scores = self.current.predict_embedded(np.stack([z[r.key] for r in rows]), side)
        except Exception as exc:
            warn(f"the pretrained predictor failed at trial {trial.number} ({exc}); not pruning")
            return False
        scores = np.asarray(scores, dtype=float)
        if not np.isfinite(scores).all():
            warn(f"the pretrained predictor gave non-finite scores at trial {trial.number}")
            return False
        if self._record is not None:  # where the trial stood: for plots and dashboards
            standing = float(np.mean(scores[1:] < scores[0]))
            self._record(study, trial, f"{RANK_ATTR}{step}", standing)
        return bool(scores[0] < np.percentile(scores[1:], percentile))

    def _fewest(self) -> int:
        """The fewest peers a decision needs (the early rule's, when there is one)."""
        if self.early_percentile is None:
            return self.n_min_trials
        return min(self.n_min_trials, self.n_early_trials)

    # ------------------------------------------------------------------ embeddings
    def _embed(self, rows: list[_Row], nets: dict[_Key, NetworkWeights]) -> dict[_Key, np.ndarray]:
        """Embeddings of ``rows``' weights: cached, or made in one batch (unreadable: left out)."""
        todo: dict[_Key, NetworkWeights] = {}
        for r in rows:
            if r.key in self._embeddings or r.key in self._unreadable or r.key in todo:
                continue
            net = nets.get(r.key) or self._read(r.trial, r.key[1])
            if net is None or not net.is_finite():
                self._unreadable.add(r.key)
                continue
            todo[r.key] = net
        if todo:
            try:
                z = np.asarray(self.current.embed(list(todo.values())))
            except Exception as exc:
                warn(f"could not embed {len(todo)} networks ({exc})")
                z = None
            if z is not None:
                for key, row in zip(todo, z, strict=True):
                    self._embeddings[key] = row
                    if self._fixed_embeddings and not self.fine_tune:
                        self._drop(*key)
        return {r.key: self._embeddings[r.key] for r in rows if r.key in self._embeddings}

    # ------------------------------------------------------------------ fine-tuning
    def _maybe_fine_tune(self, trials: list[FrozenTrial], sign: float) -> None:
        if not self.fine_tune or not getattr(self.base, "shrink", 1.0):
            return  # a correction of weight 0 would change nothing
        finished = [t for t in trials if t.state != TrialState.RUNNING and _final(t) is not None]
        if len(finished) < max(self.n_min_trials, self.refit_every):
            return
        if len(finished) - self._fitted_at < self.refit_every:
            return
        self._fitted_at = len(finished)
        rows, target = self._training_rows(trials, finished, sign)
        if len(set(r.trial.number for r in rows)) < self.n_min_trials:
            return
        try:
            self.current = self.base.fine_tuned_embedded(
                np.stack([self._embeddings[r.key] for r in rows]),
                self._training_features(trials, rows, sign),
                target,
                self.fine_tune_epochs,
            )
        except Exception as exc:
            warn(f"fine-tuning the pretrained predictor failed ({exc}); keeping the last one")
            return
        if not self._fixed_embeddings:
            self._embeddings.clear()
        self.n_refits += 1
        self.training_trials = tuple(sorted({r.trial.number for r in rows}))

    def _training_rows(
        self, trials: list[FrozenTrial], finished: list[FrozenTrial], sign: float
    ) -> tuple[list[_Row], np.ndarray]:
        finals = np.array([sign * _final(t) for t in finished])  # type: ignore[operator]
        rank = dict(zip((t._trial_id for t in finished), percentile_ranks(finals), strict=True))
        rows, target = [], []
        for t in finished:
            for s in weight_steps(t):
                if s < self.n_warmup_steps:
                    continue
                r = _row(t, s, sign)
                if r is not None and r.key[1] == s:
                    rows.append(r)
                    target.append(rank[t._trial_id])
        z = self._embed(rows, {})
        keep = [i for i, r in enumerate(rows) if r.key in z]
        return [rows[i] for i in keep], np.asarray([target[i] for i in keep], dtype=float)

    def _training_features(
        self, trials: list[FrozenTrial], rows: list[_Row], sign: float
    ) -> np.ndarray:
        """Each training row's features among the trials with a value at its step."""
        planned = _planned(trials)
        out = np.full((len(rows), 5), np.nan)
        by_step: dict[int, list[int]] = {}
        for i, r in enumerate(rows):
            by_step.setdefault(r.step, []).append(i)
        for s, idx in by_step.items():
            others = [
                r for t in trials for r in [_row(t, s, sign)] if r is not None and r.step == s
            ]
            own_ids = {rows[i].trial._trial_id for i in idx}
            group = [rows[i] for i in idx] + [r for r in others if r.trial._trial_id not in own_ids]
            out[idx] = _features(group, planned)[: len(idx)]
        return out


# ---------------------------------------------------------------------- rows and features
def _values(trial: FrozenTrial, step: int, sign: float) -> list[tuple[int, float]]:
    return sorted(
        (s, sign * float(v))
        for s, v in trial.intermediate_values.items()
        if s <= step and v is not None and math.isfinite(v)
    )


def _row(trial: FrozenTrial, step: int, sign: float) -> _Row | None:
    """``trial`` at its last step ``<= step`` that has both a value and weights."""
    values = _values(trial, step, sign)
    with_weights = set(weight_steps(trial))
    steps = [s for s, _ in values if s in with_weights]
    if not steps:
        return None
    s = steps[-1]
    upto = [v for t, v in values if t <= s]
    now = upto[-1]
    prev = upto[-2] if len(upto) >= 2 else math.nan
    return _Row(trial, (trial._trial_id, s), s, now, prev, max(upto))


def _peer(trial: FrozenTrial, step: int, sign: float) -> _Row | None:
    """A peer at ``step``: RUNNING ones only once they reported weights at ``step`` or later."""
    steps = weight_steps(trial)
    if not steps or (trial.state == TrialState.RUNNING and steps[-1] < step):
        return None
    return _row(trial, step, sign)


def _planned(trials: list[FrozenTrial]) -> float:
    last = [
        max(t.intermediate_values)
        for t in trials
        if t.state == TrialState.COMPLETE and t.intermediate_values
    ]
    return float(max(last)) if last else math.nan


def _features(rows: list[_Row], planned: float) -> np.ndarray:
    steps = np.array([r.step for r in rows], dtype=float)
    progress = steps / planned if math.isfinite(planned) and planned > 0 else np.nan
    return curve_features(
        np.array([r.now for r in rows]),
        np.array([r.prev for r in rows]),
        np.array([r.best for r in rows]),
        progress,
    )


def _final(trial: FrozenTrial) -> float | None:
    """A finished trial's value: COMPLETE's own, PRUNED's last intermediate one."""
    if trial.state == TrialState.COMPLETE:
        v = trial.value
    elif trial.intermediate_values:
        v = trial.intermediate_values[max(trial.intermediate_values)]
    else:
        return None
    return float(v) if v is not None and math.isfinite(v) else None
