"""``predict_final`` (in the trainable) and ``SNEStopper`` (in the driver)."""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import numpy as np
from ray import tune

__all__ = ["SNEStopper", "predict_final"]

_LOADED: dict[str, Any] = {}  # one regressor per saved file and worker process
_LOCK = threading.Lock()


def predict_final(weights: Any, regressor: Any) -> float:
    """The final value predicted for a network from its current ``weights`` (anything
    :func:`sne_plugin.read_weights` reads), by ``regressor``: a fitted regressor, or the path
    of one saved with ``SNERegressor.save`` (loaded once per process).

    >>> import torch
    >>> from sne_plugin.testing import FirstWeightPredictor
    >>> layer = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = layer.weight.fill_(0.25)
    >>> predict_final(layer, FirstWeightPredictor())
    0.25
    """
    from sne_plugin.readers import read_weights

    if isinstance(regressor, (str, os.PathLike)):
        regressor = _load(os.fspath(regressor))
    return float(regressor.predict([read_weights(weights, canonical=True)])[0])


def _load(path: str) -> Any:
    with _LOCK:
        if path not in _LOADED:
            from sne_plugin.regressor import SNERegressor

            _LOADED[path] = SNERegressor.load(path)
        return _LOADED[path]


class SNEStopper(tune.Stopper):
    """Stop a trial whose reported prediction (``metric``) ranks below the ``percentile``-th
    percentile of its peers: the trials that reached the same training iteration, and those
    this stopper stopped before it (at their last prediction), as SNEPruner ranks. From iteration
    ``n_warmup_steps`` on and once ``n_min_trials`` trials have reached it. ``mode="max"``:
    higher is better; ``"min"``: lower. ``percentile=80`` keeps about the best fifth, the
    rule :class:`~sne_plugin.integrations.optuna.SNEPruner` measured on the digits search.

    >>> stopper = SNEStopper(percentile=50, n_warmup_steps=1, n_min_trials=2)
    >>> stopper("a", {"training_iteration": 1, "sne_prediction": 0.9})
    False
    >>> stopper("b", {"training_iteration": 1, "sne_prediction": 0.2})
    True
    """

    def __init__(
        self,
        metric: str = "sne_prediction",
        mode: str = "max",
        *,
        percentile: float = 80.0,
        n_warmup_steps: int = 1,
        n_min_trials: int = 4,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', but got {mode=}.")
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], but got {percentile=}.")
        if n_warmup_steps < 0 or n_min_trials < 1:
            raise ValueError(
                f"expected n_warmup_steps >= 0 and n_min_trials >= 1, but got "
                f"{n_warmup_steps=} and {n_min_trials=}."
            )
        self.metric, self.mode, self.percentile = metric, mode, float(percentile)
        self.n_warmup_steps, self.n_min_trials = n_warmup_steps, n_min_trials
        self._seen: dict[int, dict[str, float]] = {}
        self.stopped: dict[str, int] = {}  # trial id -> the iteration it was stopped at

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.metric)
        step = int(result.get("training_iteration", 0))
        if value is None or not math.isfinite(float(value)):
            return False  # nothing predicted at this iteration: never stop on it
        self._seen.setdefault(step, {})[trial_id] = float(value)
        peers = self._peers(step)
        if step < self.n_warmup_steps or len(peers) < self.n_min_trials:
            return False
        if not self._is_worse(float(value), peers):
            return False
        self.stopped[trial_id] = step
        return True

    def _peers(self, step: int) -> list[float]:
        here = self._seen[step]
        earlier = [
            self._seen[at][trial]
            for trial, at in self.stopped.items()
            if at < step and trial not in here
        ]
        return [*here.values(), *earlier]

    def _is_worse(self, value: float, peers: list[float]) -> bool:
        if self.mode == "max":
            return value < float(np.percentile(peers, self.percentile))
        return value > float(np.percentile(peers, 100.0 - self.percentile))

    def stop_all(self) -> bool:
        return False
