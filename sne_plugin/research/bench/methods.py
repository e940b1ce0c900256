"""Benchmark methods: SNE (weights alone and with side inputs), the weight-space baselines,
and the baselines a search has for free (hyperparameters, learning curve, side inputs).

Every method is fitted on a task's training data and scored on its test data; a method that
cannot take a task answers with the reason (shown as "n/a" in the tables). Estimators use
their defaults except the epoch caps of a profile (``EPOCH_CAPS``), which keep ``--small``
and ``--smoke`` inside their time budgets.

>>> list(METHODS)[:3]
['sne', 'sne_light', 'statnn']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from sne_plugin.research.bench.metrics import scores
from sne_plugin.research.bench.tasks import TaskData, TaskSpec
from sne_plugin.research.util import lookup

__all__ = ["EPOCH_CAPS", "METHODS", "MethodResult", "MethodSpec", "run_method", "select_methods"]

EPOCH_CAPS: dict[str, dict[str, int]] = {
    "smoke": {
        "sne": 2,
        "sne_light": 2,
        "sne_side": 2,
        **dict.fromkeys(("sne_rank", "sne_hybrid", "sne_rank_hybrid", "sne_boost"), 2),
        "deepsets": 2,
        "flatmlp": 2,
        "nfn_np": 2,
        "nfn_hnp": 2,
    },
    "small": {
        # SNE and SNE with side inputs run at their defaults (40 epochs at most, early
        # stopping): minutes per fit since the cost rework (sne_plugin/research/bench/cost.py).
        "sne_light": 20,
        "deepsets": 20,
        "nfn_np": 15,
        "nfn_hnp": 15,
    },
    "full": {},
}
"""Per profile, the most training epochs of the torch methods (absent: the default)."""

LIGHT: dict[str, Any] = {"width": 16, "heads": 1, "chunk_size": 64}
"""SNE's cheaper setting for CPUs: about 1.7x faster encoding (``sne_plugin/research/bench/perf.py``)."""


@dataclass(frozen=True)
class MethodSpec:
    """How to build a method and which tasks it can take."""

    name: str
    label: str
    make: Callable[[int, int | None], Any]
    inputs: str = "weights"  # "weights", "hparams", "curve", "side" or "weights+side"
    same_arch_only: bool = False
    nfn: bool = False

    def unavailable(self, task: TaskSpec, data: TaskData) -> str | None:
        """Why this method cannot run on ``task`` (``None`` when it can)."""
        if self.inputs == "curve" and task.kind != "early":
            return "the accuracy at the weights' epoch is the target itself"
        if self.inputs == "side" and task.kind != "early":
            return "the side inputs are the hyperparameters here: see Hyperparameters (HGB)"
        if self.same_arch_only and not data.same_arch:
            return "needs one fixed architecture"
        if self.nfn:
            from sne_plugin.research.baselines.nfn import nfn_incompatibility

            return nfn_incompatibility(data.X_train + data.X_test)
        return None


@dataclass
class MethodResult:
    """Scores and costs of one method on one task and seed (``na``: why it did not run)."""

    task: str
    method: str
    seed: int
    scores: dict[str, float]
    fit_s: float = float("nan")
    predict_per_s: float = float("nan")
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    na: str | None = None


def _torch(cls_path: str, **fixed: Any) -> Callable[[int, int | None], Any]:
    def make(seed: int, epochs: int | None) -> Any:
        module, name = cls_path.rsplit(".", 1)
        cls = getattr(__import__(module, fromlist=[name]), name)
        extra = {} if epochs is None else {"epochs": epochs}
        return cls(random_state=seed, **fixed, **extra)

    return make


def _hgb(seed: int, epochs: int | None) -> Any:
    return HistGradientBoostingRegressor(random_state=seed)


class _StatNNResidual:
    """StatNN, then SNE on what StatNN gets wrong: SNE (``loss="mse"``) is fitted to the
    residual of StatNN's out-of-fold predictions on the training networks, and predicts
    the residual of the StatNN fitted on all of them (boosting with two stages)."""

    def __init__(self, seed: int, epochs: int | None, folds: int = 5) -> None:
        self.seed, self.epochs, self.folds = seed, epochs, folds

    def fit(self, X: list[Any], y: np.ndarray) -> _StatNNResidual:
        from sklearn.model_selection import KFold, cross_val_predict

        from sne_plugin import SNERegressor
        from sne_plugin.research.baselines import StatNNRegressor

        cv = KFold(self.folds, shuffle=True, random_state=self.seed)
        statnn = StatNNRegressor(random_state=self.seed)
        oof = cross_val_predict(statnn, X, y, cv=cv)
        self.statnn_ = statnn.fit(X, y)
        extra: dict[str, Any] = {} if self.epochs is None else {"epochs": self.epochs}
        sne = SNERegressor(loss="mse", device="cpu", verbose=False, random_state=self.seed, **extra)
        self.sne_ = sne.fit(X, np.asarray(y) - oof)
        return self

    def predict(self, X: list[Any]) -> np.ndarray:
        return np.asarray(self.statnn_.predict(X) + self.sne_.predict(X))


class _CurveBaseline:
    """The accuracy so far, as its own prediction of the final accuracy."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _CurveBaseline:
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=float)


def _specs() -> list[MethodSpec]:
    return [
        MethodSpec("sne", "SNE", _torch("sne_plugin.SNERegressor", device="cpu", verbose=False)),
        # The cheaper setting for CPUs: half the width, one head, chunks of 64.
        MethodSpec(
            "sne_light",
            "SNE light",
            _torch("sne_plugin.SNERegressor", device="cpu", verbose=False, **LIGHT),
        ),
        MethodSpec("statnn", "StatNN", _torch("sne_plugin.research.baselines.StatNNRegressor")),
        MethodSpec(
            "flatmlp",
            "FlatMLP",
            _torch("sne_plugin.research.baselines.FlatMLPRegressor", device="cpu"),
            same_arch_only=True,
        ),
        MethodSpec(
            "deepsets",
            "DeepSets",
            _torch("sne_plugin.research.baselines.DeepSetsRegressor", device="cpu"),
        ),
        MethodSpec(
            "nfn_np",
            "NFN-NP",
            _torch("sne_plugin.research.baselines.nfn.NFNRegressor", mode="np", device="cpu"),
            nfn=True,
        ),
        MethodSpec(
            "nfn_hnp",
            "NFN-HNP",
            _torch("sne_plugin.research.baselines.nfn.NFNRegressor", mode="hnp", device="cpu"),
            nfn=True,
        ),
        MethodSpec("hparams", "Hyperparameters (HGB)", _hgb, inputs="hparams"),
        MethodSpec(
            "curve", "Learning curve (acc so far)", lambda s, e: _CurveBaseline(), inputs="curve"
        ),
        # What a search knows for free, beside the weights (see side_inputs): alone, and
        # entering SNE's head next to the network embedding.
        MethodSpec("side", "Side inputs alone (HGB)", _hgb, inputs="side"),
        MethodSpec(
            "sne_side",
            "SNE + side inputs",
            _torch("sne_plugin.SNERegressor", device="cpu", verbose=False),
            inputs="weights+side",
        ),
        # Accuracy variants (issue 13): a ranking loss, StatNN's statistics as a second
        # branch of the head, both, and SNE boosting StatNN's out-of-fold residuals.
        MethodSpec(
            "sne_rank",
            "SNE pairwise",
            _torch("sne_plugin.SNERegressor", device="cpu", verbose=False, loss="pairwise"),
        ),
        MethodSpec(
            "sne_hybrid",
            "SNE + stats branch",
            _torch("sne_plugin.SNERegressor", device="cpu", verbose=False, stats_branch=True),
        ),
        MethodSpec(
            "sne_rank_hybrid",
            "SNE pairwise + stats branch",
            _torch(
                "sne_plugin.SNERegressor",
                device="cpu",
                verbose=False,
                loss="pairwise",
                stats_branch=True,
            ),
        ),
        MethodSpec("sne_boost", "StatNN + SNE on its residual", _StatNNResidual),
    ]


METHODS: dict[str, MethodSpec] = {m.name: m for m in _specs()}


def select_methods(names: list[str] | None = None) -> list[MethodSpec]:
    """All methods, or those named (unknown names raise SNEError with "did you mean")."""
    return [lookup(METHODS, n, "method") for n in names] if names else list(METHODS.values())


def side_inputs(data: TaskData, early: bool) -> tuple[np.ndarray, np.ndarray]:
    """What a search knows beside the weights: the hyperparameters, and on early tasks the
    accuracy at the weights' epoch (elsewhere that accuracy is the target itself)."""
    if not early:
        return data.H_train, data.H_test
    return np.c_[data.curve_train, data.H_train], np.c_[data.curve_test, data.H_test]


def _inputs(method: MethodSpec, task: TaskSpec, data: TaskData) -> tuple[Any, Any]:
    if method.inputs == "hparams":
        return data.H_train, data.H_test
    if method.inputs == "curve":
        return data.curve_train, data.curve_test
    if method.inputs == "side":
        return side_inputs(data, task.kind == "early")
    return data.X_train, data.X_test


def _side_kwargs(
    method: MethodSpec, task: TaskSpec, data: TaskData
) -> tuple[dict[str, Any], dict[str, Any]]:
    if method.inputs != "weights+side":
        return {}, {}
    train, test = side_inputs(data, task.kind == "early")
    return {"side": train}, {"side": test}


def run_method(
    method: MethodSpec, task: TaskSpec, data: TaskData, seed: int, profile: str
) -> MethodResult:
    """Fit ``method`` on the task's training data, score it on the test data."""
    reason = method.unavailable(task, data)
    if reason:
        return MethodResult(task.name, method.name, seed, {}, na=reason)
    est = method.make(seed, EPOCH_CAPS.get(profile, {}).get(method.name))
    X_train, X_test = _inputs(method, task, data)
    fit_kw, predict_kw = _side_kwargs(method, task, data)
    start = time.perf_counter()
    est.fit(X_train, data.y_train, **fit_kw)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = np.asarray(est.predict(X_test, **predict_kw), dtype=float)
    rate = len(data.y_test) / max(time.perf_counter() - start, 1e-9)
    return MethodResult(
        task.name, method.name, seed, scores(data.y_test, pred), fit_s, rate, data.y_test, pred
    )
