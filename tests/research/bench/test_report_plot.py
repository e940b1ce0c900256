"""The benchmark's scatter plot: drawn from the run's first seed, whichever it is."""

from __future__ import annotations

import numpy as np
import pytest

from sne_plugin.research.bench.methods import MethodResult
from sne_plugin.research.bench.report import scatter_png

pytest.importorskip("matplotlib")


def _result(seed: int, method: str = "sne") -> MethodResult:
    y = np.linspace(0.1, 0.9, 12)
    return MethodResult("in_dist", method, seed, {"tau": 0.5}, y_true=y, y_pred=y[::-1])


def test_a_run_on_seeds_3_to_5_still_gets_its_plot(tmp_path) -> None:
    """``sne bench --first-seed 3`` once wrote no plot: the plot looked for seed 0 only."""
    path = tmp_path / "scatter.png"
    results = [_result(s, m) for s in (3, 4, 5) for m in ("sne", "statnn")]
    assert scatter_png(results, "in_dist", path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_plot_when_no_method_to_draw_ran(tmp_path) -> None:
    assert not scatter_png([_result(0, "hparams")], "in_dist", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
