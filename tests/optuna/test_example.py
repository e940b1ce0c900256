"""The pruning example and the pruner benchmark run end to end (tiny settings, real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_the_example_searches_with_shared_storage_and_artifacts(tmp_path: Path) -> None:
    args = [
        str(ROOT / "examples" / "optuna_pruning.py"),
        "--trials", "8", "--epochs", "3",
        "--storage", f"sqlite:///{tmp_path / 'digits.db'}",
        "--artifact-dir", str(tmp_path / "artifacts"),
    ]  # fmt: skip
    text = _run(args, tmp_path)
    assert "best accuracy" in text and "of 24 epochs trained" in text
    assert any((tmp_path / "artifacts").iterdir())  # weights went through the artifact store


@pytest.mark.slow
def test_the_example_pretrains_saves_and_reloads_its_regressor(tmp_path: Path) -> None:
    saved = tmp_path / "digits-sne.sne"
    common = [str(ROOT / "examples" / "optuna_pruning.py"), "--trials", "6", "--epochs", "3"]
    text = _run([*common, "--pretrain", "3", "--save-regressor", str(saved)], tmp_path)
    assert "pretraining zoo: 3 configurations" in text and "of 18 epochs trained" in text
    assert saved.stat().st_size > 0
    text = _run([*common, "--regressor", str(saved)], tmp_path)
    assert "pretraining zoo" not in text and "of 18 epochs trained" in text


@pytest.mark.slow
def test_the_example_refuses_contradictory_options(tmp_path: Path) -> None:
    script = str(ROOT / "examples" / "optuna_pruning.py")
    for args, message in (
        (["--pretrain", "2", "--regressor", "x.joblib"], "not both"),
        (["--save-regressor", "x.joblib"], "--save-regressor needs --pretrain N"),
        (["--pretrain", "-1"], "--pretrain must be >= 0, got -1"),
    ):
        out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr


@pytest.mark.slow
def test_the_pruner_benchmark_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "pruners.md"
    args = [
        "-m", "sne_plugin.research.bench.pruners",
        "--seeds", "1", "--trials", "6", "--epochs", "3", "--zoo", "3", "--out", str(out),
    ]  # fmt: skip
    _run(args, tmp_path)
    text = out.read_text()
    for name in ("NopPruner", "MedianPruner", "SNEPruner (online)", "SNEPruner (pretrained)"):
        assert f"| {name} |" in text
    assert "goal 1" in text


@pytest.mark.slow
def test_the_signal_table_ranks_the_curve_and_sne_per_step(tmp_path: Path) -> None:
    out = tmp_path / "signals.md"
    args = [
        "-m", "sne_plugin.research.bench.pruner_signals",
        "--heldout", "5", "--zoo", "2", "--epochs", "3", "--steps", "1", "2",
        "--loss", "bce", "mse", "--out", str(out),
    ]  # fmt: skip
    _run(args, tmp_path)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert rows[0] == "| signal | step 1 | step 2 |"
    assert rows[1].startswith("| validation accuracy so far | ")
    assert [r.split(" | ")[0] for r in rows[2:]] == [
        "| SNE pretrained on 2 trials, loss=bce",
        "| mean rank of the curve and SNE on 2 trials, loss=bce",
        "| SNE pretrained on 2 trials, loss=mse",
        "| mean rank of the curve and SNE on 2 trials, loss=mse",
    ]  # fmt: skip
    taus = [float(v) for r in rows[1:] for v in r.strip("| ").split(" | ")[1:]]
    assert len(taus) == 10 and all(-1 <= t <= 1 for t in taus)
