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
    lines = printed.splitlines()
    for name in ("SNE     ", "StatNN  "):  # a tau, or "no Kendall tau" and why
        assert any(line.startswith(name) and "Kendall tau" in line for line in lines)
    assert "Kendall's tau: how well predicted accuracies order" in printed
    assert "with SNEPruner:" in printed and "unpruned:" in printed
    assert "tau nan" not in printed
    assert set(out["tau"]) == {"SNE", "StatNN"} and out["epochs_saved"] >= 0
    assert 0 < out["best_pruned"] <= 1 and 0 < out["best_unpruned"] <= 1


def test_no_tau_is_explained() -> None:
    import numpy as np

    from sne_plugin.research.demo import _why_no_tau

    assert "predicted one value, 0.572, for every network" in _why_no_tau(np.full(6, 0.572))
    assert "same accuracy" in _why_no_tau(np.array([0.1, 0.2]))
