"""SNEPruner with the shipped, curve-aware predictor (its default), on real Optuna studies."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from sne_plugin.curve import CURVE_FEATURES
from sne_plugin.integrations.optuna import SNEPruner, report_weights
from sne_plugin.pretrained import CurvePredictor, load_pretrained
from sne_plugin.testing.optuna import net


def _trial(study: optuna.Study, quality: float, steps: int = 4) -> list[bool]:
    """A trial whose curve rises with ``quality``; it stops at the first prune."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trial = study.ask()
    answers = []
    for step in range(1, steps + 1):
        value = quality * step / steps
        trial.report(value if maximize else 1.0 - value, step)
        report_weights(trial, net(0.5, trial.number, step), step)
        answers.append(trial.should_prune())
        if answers[-1]:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return answers
    study.tell(trial, quality if maximize else 1.0 - quality)
    return answers


def test_the_default_is_the_shipped_predictor() -> None:
    p = load_pretrained()
    assert isinstance(p, CurvePredictor) and p.features == CURVE_FEATURES
    assert p.info["n_samples"] > 1000 and p.info["package_version"]
    assert SNEPruner()._curve is not None
    assert SNEPruner(online=True)._curve is None  # online-only: the weights-only regressor


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_it_prunes_the_trials_whose_curve_and_weights_rank_last(direction: str) -> None:
    study = optuna.create_study(direction=direction, pruner=SNEPruner(online=False, n_min_trials=4))
    for q in (0.5, 0.6, 0.7, 0.8, 0.9):  # no decision before 4 peers
        assert not any(_trial(study, q))
    assert _trial(study, 0.05)[-1]  # far below every peer, on the curve
    assert not any(_trial(study, 0.95))  # above every peer
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == 1


def test_too_few_peers_or_no_value_means_no_pruning() -> None:
    study = optuna.create_study(direction="maximize", pruner=SNEPruner(n_min_trials=5))
    for q in (0.9, 0.8, 0.1):
        assert not any(_trial(study, q))
    trial = study.ask()  # weights but no intermediate value: not ranked
    report_weights(trial, net(0.5, 0, 1), 1)
    assert not trial.should_prune()


@pytest.mark.parametrize(("early", "pruned"), [(25.0, True), (None, False)])
def test_the_early_rule_stops_the_clearly_worst_before_n_min_trials(
    early: float | None, pruned: bool
) -> None:
    pruner = SNEPruner(online=False, n_min_trials=5, early_percentile=early, n_early_trials=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for q in (0.6, 0.8, 0.7):  # 0, 1, 2 peers: below the early rule's 3
        assert not any(_trial(study, q))
    assert any(_trial(study, 0.1)) is pruned  # 3 peers, last of them all
    assert not any(_trial(study, 0.9))  # 4 peers, above every one


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"early_percentile": 120.0}, "percentile must be between 0 and 100"),
        ({"n_early_trials": 0}, "n_early_trials must be an int >= 1"),
        ({"n_early_trials": 2.5}, "n_early_trials must be an int >= 1"),
    ],
)
def test_bad_early_rule_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SNEPruner(**kwargs)  # type: ignore[arg-type]


def test_the_shipped_predictor_ranks_by_the_curve_until_a_correction_has_weight() -> None:
    p = load_pretrained()
    assert p.shrink == 0.0  # chosen on the meta-zoo's leave-out folds (BENCHMARKS.md)
    side = np.array([[0.9, 0.5, 0.9, 0.5, 0.5], [0.1, 0.5, 0.1, 0.5, 0.5]])
    nets = [net(0.5, i, 1) for i in range(2)]
    from sne_plugin.readers import read_weights

    nets = [read_weights(n) for n in nets]
    np.testing.assert_allclose(p.predict(nets, side), [0.9, 0.1])
    full = CurvePredictor(p.regressor, p.info, shrink=1.0)
    assert not np.allclose(full.predict(nets, side), [0.9, 0.1])


def test_fine_tuning_happens_on_finished_trials_and_keeps_the_shipped_one() -> None:
    shipped = load_pretrained()
    full = CurvePredictor(shipped.regressor, shipped.info, shrink=1.0)
    pruner = SNEPruner(full, n_min_trials=3, refit_every=3, percentile=10.0)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    rng = np.random.default_rng(0)
    for q in rng.uniform(0.2, 0.9, 8):
        _trial(study, float(q))
    assert pruner.n_refits_ >= 1 and len(pruner.training_trials_) >= 3
    assert pruner._curve.current is not pruner._curve.base
    assert pruner._curve.base is full and pruner._curve.current.shrink == 1.0


def test_non_finite_weights_are_pruned_at_once() -> None:
    import torch

    study = optuna.create_study(direction="maximize", pruner=SNEPruner())
    trial = study.ask()
    model = net(0.5, 0, 1)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    trial.report(0.5, 1)
    report_weights(trial, model, 1)
    assert trial.should_prune()
