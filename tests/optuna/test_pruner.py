"""SNEPruner and report_weights through the real Optuna API on SQLite storage."""

from __future__ import annotations

import json
import math
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from sne_plugin import SNERegressor
from sne_plugin.integrations.optuna import SNEPruner, report_weights
from sne_plugin.research.baselines import StatNNRegressor
from sne_plugin.testing import tiny_regressor
from sne_plugin.testing.optuna import N_STEPS, final_value, net, run_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

ZOO_SCALES = np.linspace(0.2, 1.0, 10)
BAD, GOOD = 0.1, 1.0
SEED = 0  # one initialisation "trained" to different weight scales: quality is the scale


@pytest.fixture(scope="module")
def pretrained() -> dict[str, SNERegressor]:
    """One SNERegressor per direction, fitted on a separate zoo (other seeds)."""
    scales = np.linspace(0.1, 1.0, 16)
    nets = [net(s, SEED, step) for s in scales for step in range(N_STEPS)]
    models = {}
    for direction in ("maximize", "minimize"):
        y = [final_value(s, direction) for s in scales for _ in range(N_STEPS)]
        models[direction] = tiny_regressor().fit(nets, y)
    return models


def _pruner(mode: str, direction: str, pretrained: dict[str, SNERegressor], **kw: Any) -> SNEPruner:
    refit_every = len(ZOO_SCALES) if mode == "both" else 1000  # one (re)fit, on the zoo
    kw = {"percentile": 50.0, "n_min_trials": 8, "n_warmup_steps": 1, **kw}
    kw.setdefault("refit_every", refit_every)
    if mode == "online":
        return SNEPruner(factory=tiny_regressor, **kw)
    return SNEPruner(pretrained[direction], online=mode == "both", **kw)


def _study(tmp_path: Path, direction: str, pruner: SNEPruner) -> optuna.Study:
    return optuna.create_study(
        direction=direction, pruner=pruner, storage=f"sqlite:///{tmp_path / 'study.db'}"
    )


def _with_zoo(study: optuna.Study) -> optuna.Study:
    """COMPLETE trials that report weights but never ask the pruner."""
    for scale in ZOO_SCALES:
        run_trial(study, float(scale), seed=SEED, check=False)
    return study


@pytest.mark.parametrize("mode", ["pretrained", "online", "both"])
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_prunes_the_trial_whose_weights_predict_a_poor_value(
    tmp_path: Path, pretrained: dict[str, SNERegressor], mode: str, direction: str
) -> None:
    pruner = _pruner(mode, direction, pretrained)
    study = _with_zoo(_study(tmp_path, direction, pruner))
    assert run_trial(study, BAD, seed=SEED) == [False, True]  # step 0 is warm-up
    assert run_trial(study, GOOD, seed=SEED) == [False, False]
    states = [t.state for t in study.trials[-2:]]
    assert states == [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE]
    prediction = study.trials[-1].user_attrs["sne:prediction:1"]
    assert type(prediction) is float and math.isfinite(prediction)
    assert pruner.n_refits_ == (0 if mode == "pretrained" else 1)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_does_not_prune_before_enough_finished_trials(
    tmp_path: Path, pretrained: dict[str, SNERegressor], direction: str
) -> None:
    study = _study(tmp_path, direction, _pruner("pretrained", direction, pretrained))
    for scale in ZOO_SCALES[:7]:
        run_trial(study, float(scale), seed=SEED, check=False)
    assert run_trial(study, BAD, seed=SEED) == [False, False]


def test_values_reference_compares_predictions_with_final_values(
    tmp_path: Path, pretrained: dict[str, SNERegressor]
) -> None:
    pruner = _pruner("pretrained", "maximize", pretrained, reference="values", percentile=0.0)
    study = _with_zoo(_study(tmp_path, "maximize", pruner))
    answers = run_trial(study, BAD, seed=SEED)
    prediction = study.trials[-1].user_attrs["sne:prediction:1"]
    assert answers == [False, prediction < min(ZOO_SCALES)]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_peers_reference_counts_pruned_trials_and_needs_no_complete_one(
    tmp_path: Path, pretrained: dict[str, SNERegressor], direction: str
) -> None:
    pruner = _pruner("pretrained", direction, pretrained, reference="peers")
    study = _study(tmp_path, direction, pruner)
    for scale in ZOO_SCALES[:8]:  # stopped by the user: PRUNED, with weights at both steps
        trial = study.ask()
        for step in range(2):
            report_weights(trial, net(float(scale), SEED, step), step)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert run_trial(study, BAD, seed=SEED) == [False, True]
    assert run_trial(study, GOOD, seed=SEED) == [False, False]
    # one prediction each, at step 1: the 8 PRUNED trials, BAD and GOOD (batched, cached)
    assert sorted(step for _, step in pruner._predictions) == [1] * 10


def _trial_with_curve(study: optuna.Study, scale: float, value: float) -> bool:
    """A trial whose weights have ``scale`` and whose intermediate values are ``value``."""
    trial = study.ask()
    for step in range(2):
        trial.report(value, step)
        report_weights(trial, net(scale, SEED, step), step)
    answer = trial.should_prune()
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    study.tell(trial, final_value(scale, "maximize" if maximize else "minimize"))
    return answer


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize(("learning_curve", "pruned"), [(0.0, False), (1.0, True)])
def test_learning_curve_blends_the_intermediate_values_in(
    tmp_path: Path,
    pretrained: dict[str, SNERegressor],
    direction: str,
    learning_curve: float,
    pruned: bool,
) -> None:
    kw = {"reference": "peers", "learning_curve": learning_curve}
    study = _study(tmp_path, direction, _pruner("pretrained", direction, pretrained, **kw))
    for scale in ZOO_SCALES:  # intermediate values that rank like the final values
        _trial_with_curve(study, float(scale), final_value(float(scale), direction))
    worst_value = final_value(0.0, direction)
    # good weights, the worst learning curve: the weights alone keep it, the curve alone drops it
    assert _trial_with_curve(study, GOOD, worst_value) is pruned


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_default_blends_weights_and_curve_half_and_half(
    tmp_path: Path, pretrained: dict[str, SNERegressor], direction: str
) -> None:
    worst, best = final_value(0.0, direction), final_value(1.0, direction)
    probes = [(GOOD, worst), (BAD, best), (0.5, best), (0.5, worst)]
    answers = {}
    for blend in (None, 0.5, 0.0, 1.0):
        folder = tmp_path / str(blend)
        folder.mkdir()
        kw = {"reference": "peers"} if blend is None else {"learning_curve": blend}
        pruner = _pruner("pretrained", direction, pretrained, **kw)
        study = _study(folder, direction, pruner)
        for scale in ZOO_SCALES:
            _trial_with_curve(study, float(scale), final_value(float(scale), direction))
        answers[blend] = [_trial_with_curve(study, s, v) for s, v in probes]
    assert answers[None] == answers[0.5]
    assert answers[0.5] != answers[0.0] or answers[0.5] != answers[1.0]  # the blend matters


def test_values_reference_defaults_to_weights_only(pretrained: dict[str, SNERegressor]) -> None:
    SNEPruner(pretrained["maximize"], reference="values")  # no blend, so no error
    with pytest.raises(ValueError, match="reference='values' does not have"):
        SNEPruner(pretrained["maximize"], reference="values", learning_curve=0.5)


def test_pretrained_mode_forgets_weights_once_predicted(
    tmp_path: Path, pretrained: dict[str, SNERegressor]
) -> None:
    pruner = _pruner("pretrained", "maximize", pretrained)
    study = _with_zoo(_study(tmp_path, "maximize", pruner))
    trial = study.ask()
    for step in range(2):
        report_weights(trial, net(BAD, SEED, step), step)
    answers = [trial.should_prune(), trial.should_prune()]  # the second from the cache
    assert answers == [True, True]
    kept = pruner.bank._nets
    assert not [key for key in kept if key[0] == trial._trial_id]
    assert not [key for key in kept if key[1] == 1]  # the zoo's step-1 weights were predicted


def test_predictions_reference_ignores_pruned_trials(
    tmp_path: Path, pretrained: dict[str, SNERegressor]
) -> None:
    pruner = _pruner("pretrained", "maximize", pretrained, reference="predictions")
    study = _study(tmp_path, "maximize", pruner)
    for scale in ZOO_SCALES[:8]:
        trial = study.ask()
        report_weights(trial, net(float(scale), SEED, 1), 1)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert run_trial(study, BAD, seed=SEED) == [False, False]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_diverged_weights_are_pruned_at_once(tmp_path: Path, value: float) -> None:
    study = _study(tmp_path, "maximize", SNEPruner(factory=tiny_regressor))
    trial = study.ask()
    model = net(0.5, 0, 0)
    with torch.no_grad():
        model[0].weight[0, 0] = value
    report_weights(trial, model, 0)
    assert trial.should_prune() is True


def test_a_trial_that_never_reports_weights_is_never_pruned(
    tmp_path: Path, pretrained: dict[str, SNERegressor]
) -> None:
    study = _with_zoo(_study(tmp_path, "maximize", _pruner("pretrained", "maximize", pretrained)))
    assert run_trial(study, BAD, seed=SEED, weights=False) == [False, False]


def test_report_weights_leaves_intermediate_values_alone_and_stores_plain_json(
    tmp_path: Path,
) -> None:
    study = _study(tmp_path, "maximize", SNEPruner(artifact_dir=tmp_path / "artifacts"))
    trial = study.ask()
    trial.report(0.25, 0)
    report_weights(trial, net(0.5, 0, 0).state_dict(), 0)
    frozen = study.trials[0]
    assert frozen.intermediate_values == {0: 0.25}
    artifact_id = frozen.user_attrs["sne:weights:0"]
    assert isinstance(artifact_id, str)
    assert (tmp_path / "artifacts" / artifact_id).stat().st_size < 10_000


def test_report_weights_without_an_sne_pruner_warns_and_keeps_nothing(tmp_path: Path) -> None:
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner())
    trial = study.ask()
    with pytest.warns(UserWarning, match="not an SNEPruner"):
        report_weights(trial, net(0.5, 0, 0), 0)
    assert trial.user_attrs == {}


def test_report_weights_finds_a_wrapped_pruner() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        pruner = optuna.pruners.PatientPruner(SNEPruner(), patience=1)
    trial = optuna.create_study(pruner=pruner).ask()
    report_weights(trial, net(0.5, 0, 0), 3)
    assert trial.user_attrs == {"sne:weights:3": None}


@pytest.mark.parametrize("step", [-1, 1.5, True])
def test_report_weights_rejects_a_bad_step(step: Any) -> None:
    trial = optuna.create_study(pruner=SNEPruner()).ask()
    with pytest.raises(ValueError, match=r"step must be a non-negative int, but got step="):
        report_weights(trial, net(0.5, 0, 0), step)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"percentile": -1.0}, r"between 0 and 100 inclusive, but got percentile=-1.0\."),
        ({"percentile": 101.0}, r"but got percentile=101.0\."),
        ({"n_warmup_steps": -1}, r"warmup steps cannot be negative, but got n_warmup_steps=-1\."),
        ({"n_min_trials": 0}, r"at least 1, but got n_min_trials=0\."),
        ({"refit_every": 0}, r"refit_every must be at least 1, but got refit_every=0\."),
        ({"fine_tune_epochs": 0}, r"but got fine_tune_epochs=0\."),
        ({"max_train_networks": 0}, r"but got max_train_networks=0\."),
        ({"online": False, "factory": lambda: None}, r"must learn online, but got online=False\."),
        ({"regressor": object()}, r"estimator with predict\(\) or a path, but got regressor="),
        ({"factory": 3}, r"callable returning an estimator, but got factory=3\."),
        ({"reference": "median"}, r"reference must be one of .*, but got reference='median'\."),
        ({"learning_curve": 1.5}, r"between 0 and 1, but got learning_curve=1.5\."),
        (
            {"learning_curve": 0.5, "reference": "values"},
            r"use 'peers' or 'predictions', but got reference='values' with learning_curve=0.5\.",
        ),
        ({"artifact_dir": "a", "artifact_store": object()}, r"not both, but got artifact_dir='a'"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SNEPruner(**kwargs)


def test_fine_tuning_needs_partial_fit() -> None:
    fitted = StatNNRegressor().fit([net(s, 0, 0) for s in (0.1, 0.5, 0.9)], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match=r"needs partial_fit\(\), but got regressor="):
        SNEPruner(fitted, online=True)


def test_a_saved_regressor_is_loaded_from_its_path(
    tmp_path: Path, pretrained: dict[str, SNERegressor]
) -> None:
    path = tmp_path / "regressor.sne"
    pretrained["maximize"].save(path)
    pruner = SNEPruner(path, percentile=50.0, n_min_trials=8)
    study = _with_zoo(_study(tmp_path, "maximize", pruner))
    assert run_trial(study, BAD, seed=SEED) == [False, True]


def test_a_missing_saved_regressor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        SNEPruner(tmp_path / "missing.sne")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickled_regressor_is_refused_unrun(
    tmp_path: Path, pretrained: dict[str, SNERegressor]
) -> None:
    # SNEPruner(path) reads through SNERegressor.load: pickles are never unpickled
    import joblib

    from sne_plugin import SNEError

    marker = tmp_path / "ran"
    joblib.dump([_Payload(marker), pretrained["maximize"]], tmp_path / "evil.joblib")
    with pytest.raises(SNEError, match=r"evil\.joblib' is a pickle or joblib file"):
        SNEPruner(tmp_path / "evil.joblib")
    with pytest.raises(SNEError, match=r"pickle or joblib"):
        SNEPruner(tmp_path / "evil.joblib", online=True)
    assert not marker.exists()


class _Raising:
    def predict(self, X: list[Any]) -> np.ndarray:
        raise RuntimeError("boom")


class _NaN:
    def predict(self, X: list[Any]) -> np.ndarray:
        return np.full(len(X), np.nan)


@pytest.mark.parametrize(
    ("regressor", "match"),
    [
        (_Raising(), "failed on the weights of trial 10 .boom."),
        (_NaN(), "expected one finite value"),
    ],
)
def test_odd_predictions_warn_and_do_not_prune(tmp_path: Path, regressor: Any, match: str) -> None:
    study = _with_zoo(_study(tmp_path, "maximize", SNEPruner(regressor, n_min_trials=8)))
    with pytest.warns(UserWarning, match=match):
        assert run_trial(study, BAD, seed=SEED) == [False, False]


def test_unreadable_weights_of_another_worker_warn_and_do_not_prune(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    _with_zoo(_study(tmp_path, "maximize", SNEPruner(artifact_dir=artifacts)))
    shutil.rmtree(artifacts)  # the other worker's weights are gone
    pruner = SNEPruner(factory=tiny_regressor, n_min_trials=8, artifact_dir=artifacts)
    study = optuna.load_study(
        study_name=optuna.get_all_study_names(f"sqlite:///{tmp_path / 'study.db'}")[0],
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        pruner=pruner,
    )
    with pytest.warns(UserWarning, match="could not read the weights of trial 0 at step 1"):
        assert run_trial(study, BAD, seed=SEED) == [False, False]
    assert pruner.n_refits_ == 0


def test_any_estimator_and_threads_sharing_one_pruner(tmp_path: Path) -> None:
    pruner = SNEPruner(
        factory=lambda: StatNNRegressor(min_samples_leaf=2, random_state=0),
        n_min_trials=6,
        refit_every=2,
        percentile=50.0,
    )
    study = _study(tmp_path, "maximize", pruner)

    def objective(trial: optuna.Trial) -> float:
        scale = trial.suggest_float("scale", 0.05, 1.0)
        for step in range(3):
            trial.report(0.0, step)
            report_weights(trial, net(scale, trial.number, step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return scale

    study.optimize(objective, n_trials=24, n_jobs=3)
    states = {t.state for t in study.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert optuna.trial.TrialState.PRUNED in states
    assert pruner.n_refits_ >= 2
    assert len(pruner.training_trials_) >= 6


def test_import_sne_plugin_does_not_import_optuna() -> None:
    code = (
        "import sys, sne_plugin\nsne_plugin.SNERegressor\n"
        "print(json.dumps('optuna' in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) is False


def test_reported_modules_are_read_in_the_estimators_canonical_form() -> None:
    """BatchNorm folded, as SNERegressor's own reads do, so a regressor fitted on modules and
    the weights a trial reports are one distribution."""
    from sne_plugin import read_weights

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    model.eval()
    pruner = SNEPruner(online=False)
    study = optuna.create_study(pruner=pruner)
    trial = study.ask()
    report_weights(trial, model, 1)
    got = pruner.bank.cached(trial._trial_id, 1)
    want = read_weights(model, canonical=True)
    assert got is not None and len(got.layers) == len(want.layers) == 2
    assert len(read_weights(model).layers) == 3  # as stored: the BatchNorm a layer of its own
    for a, b in zip(got.layers, want.layers, strict=True):
        assert torch.equal(torch.as_tensor(a.weight), torch.as_tensor(b.weight))


def test_a_pickled_pruner_keeps_its_weights_and_works(tmp_path: Path) -> None:
    """Lightning's ddp_spawn pickles the trial, and with it the study's pruner, into each
    worker process: the copy holds the reported weights and a lock of its own."""
    from sne_plugin.testing import FirstWeightPredictor

    pruner = SNEPruner(FirstWeightPredictor(), n_warmup_steps=0, artifact_dir=tmp_path / "a")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", pruner=pruner)
    trial = study.ask()
    report_weights(trial, torch.nn.Linear(2, 1), 0)
    copy = pickle.loads(pickle.dumps(pruner))
    assert copy.bank.cached(trial._trial_id, 0) is not None
    assert copy._lock is not pruner._lock
    report_weights(trial, torch.nn.Linear(2, 1), 1, pruner=copy)
    assert copy.bank.cached(trial._trial_id, 1) is not None
    assert copy.prune(study, study.trials[0]) is False  # too few trials: no error either
    default = pickle.loads(pickle.dumps(SNEPruner()))  # the shipped predictor's curve engine
    assert default._curve is not None
