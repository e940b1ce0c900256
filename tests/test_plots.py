"""sne_plugin.plots: real figures from real estimators' outputs and real Optuna studies."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from sne_plugin.errors import SNEError
from sne_plugin.integrations.optuna import SNEPruner, report_weights
from sne_plugin.testing.optuna import net

plots = pytest.importorskip("sne_plugin.plots")
pytest.importorskip("matplotlib")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_predictions_plot_is_written_with_its_tau(tmp_path: Path) -> None:
    path = tmp_path / "pred.png"
    fig = plots.plot_predictions([0.1, 0.5, 0.4, 0.9], [0.2, 0.3, 0.6, 0.8], path=path)
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
    assert "Kendall tau 0.67" in fig.axes[0].get_title()
    assert len(fig.axes[0].collections[0].get_offsets()) == 4


@pytest.mark.parametrize(
    ("t", "p", "match"),
    [([0.1, 0.2], [0.1], "one non-zero length"), ([float("nan")], [1.0], "finite values")],
)
def test_bad_predictions_are_refused(t: list[float], p: list[float], match: str) -> None:
    with pytest.raises(SNEError, match=match):
        plots.plot_predictions(t, p)


def test_timeline_shows_what_snepruner_did(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize", pruner=SNEPruner(online=False))
    for i, q in enumerate([0.6, 0.7, 0.8, 0.65, 0.75, 0.9, 0.1, 0.2]):
        trial = study.ask()
        for step in range(1, 5):
            trial.report(q * step / 4, step)
            report_weights(trial, net(0.5, i, step), step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, q)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned  # the two worst trials, at least one of them
    ranks = [t for t in study.trials if any(k.startswith("sne:rank:") for k in t.user_attrs)]
    assert ranks and all(
        0.0 <= v <= 1.0 for t in ranks for k, v in t.user_attrs.items() if k.startswith("sne:rank:")
    )
    path = tmp_path / "timeline.png"
    fig = plots.plot_pruning_timeline(study, path=path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    left = fig.axes[0]
    assert left.get_title() == f"8 trials: {8 - len(pruned)} completed, {len(pruned)} pruned"
    crosses = [line for line in left.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == len(pruned)
    assert len(left.texts) == len(ranks)  # one annotation per trial SNEPruner ranked


def test_timeline_of_an_empty_study_is_refused() -> None:
    with pytest.raises(SNEError, match="at least one trial"):
        plots.plot_pruning_timeline(optuna.create_study())
