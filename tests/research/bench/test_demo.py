from __future__ import annotations

import time
from pathlib import Path

import pytest

from sne_plugin.research.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_quick_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna")
    start = time.perf_counter()
    out = run_demo(DemoConfig(n_models=32, quick=True, cache=str(tmp_path), trials=6, epochs=3))
    assert time.perf_counter() - start < 120  # about 30-50 s on 2 shared cores
    printed = capsys.readouterr().out
    assert "SNE     Kendall tau" in printed and "StatNN  Kendall tau" in printed
    assert "Optuna with SNEPruner" in printed
    assert set(out["tau"]) == {"SNE", "StatNN"} and out["epochs_saved"] >= 0
