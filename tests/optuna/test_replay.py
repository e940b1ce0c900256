"""sne_plugin.research.bench.pruner_replay: replays a recorded search under each pruner, exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from sne_plugin import NetworkWeights
from sne_plugin.integrations.optuna import SNEPruner
from sne_plugin.research.bench import pruner_replay
from sne_plugin.testing import FirstWeightPredictor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rp() -> Any:
    return pruner_replay


def _net(value: float) -> NetworkWeights:
    """A network whose first weight is ``value`` (what the oracle below reads back)."""
    weight = torch.full((3, 2), 0.5)
    weight[0, 0] = value
    return NetworkWeights.from_pairs([(weight, torch.zeros(3))])


FirstWeight = FirstWeightPredictor


def _search(rp: Any, finals: list[float], epochs: int = 3) -> Any:
    """Trials whose curve rises linearly to ``finals`` and whose weights carry the final."""
    values = np.asarray([[f * (k + 1) / epochs for k in range(epochs)] for f in finals])
    weights = [[_net(f) for _ in range(epochs)] for f in finals]
    return rp.Search(seed=0, values=values, weights=weights)


def test_nop_replay_trains_everything_and_keeps_the_best(rp: Any) -> None:
    search = _search(rp, [0.5, 0.9, 0.7, 0.8])
    out = rp.replay(search, optuna.pruners.NopPruner())
    assert out.epochs == 12 and out.best == pytest.approx(0.9) and out.pruned_at == []


@pytest.mark.parametrize(
    ("finals", "pruned_at", "epochs", "best"),
    [
        # peers are the earlier trials; from the third trial on, one below the median of
        # its peers' predictions stops at step 1 (warm-up 1, two peers needed)
        ([0.6, 0.8, 0.5, 0.9, 0.4], [1, 1], 3 + 3 + 2 + 3 + 2, 0.9),
        ([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 1], 3 + 3 + 2 + 2 + 2, 0.9),
        ([0.5, 0.6, 0.7, 0.8, 0.9], [], 15, 0.9),
    ],
)
def test_sne_replay_prunes_where_the_rule_says(
    rp: Any, finals: list[float], pruned_at: list[int], epochs: int, best: float
) -> None:
    pruner = SNEPruner(rp.Memo(FirstWeight()), percentile=50.0, n_warmup_steps=1, n_min_trials=2)
    out = rp.replay(_search(rp, finals), pruner)
    assert (out.pruned_at, out.epochs, out.best) == (pruned_at, epochs, pytest.approx(best))


def test_hyperband_replays_the_same_way_twice(rp: Any) -> None:
    finals = list(np.linspace(0.3, 0.9, 12)[::-1])
    search = _search(rp, finals, epochs=9)

    def hyperband() -> optuna.pruners.BasePruner:
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)

    first, second = rp.replay(search, hyperband()), rp.replay(search, hyperband())
    assert first.pruned_at and (first.epochs, first.pruned_at) == (second.epochs, second.pruned_at)


def test_memo_predicts_each_content_once(rp: Any) -> None:
    model = FirstWeight()
    memo = rp.Memo(model)
    a, b, c = _net(0.1), _net(0.1), _net(0.2)  # a and b: equal values, different objects
    assert memo.predict([a, c]).tolist() == pytest.approx([0.1, 0.2])
    assert memo.predict([b, a, c]).tolist() == pytest.approx([0.1, 0.1, 0.2])
    assert model.seen == 2


def test_top_k_finishes_the_leaders_after_k_epochs(rp: Any) -> None:
    search = rp.Search(
        seed=0,
        values=np.asarray([[0.9, 0.5], [0.1, 0.95], [0.5, 0.6], [0.2, 0.3]]),
        weights=[],
    )
    out = rp.top_k(search, 1, 0.5)  # keeps trials 0 and 2: 4 x 1 + 2 x 1 epochs
    assert (out.epochs, out.best) == (6, pytest.approx(0.6))


@pytest.mark.slow
def test_the_replay_benchmark_writes_table_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "replay.md", tmp_path / "replay.png"
    args = [
        "-m", "sne_plugin.research.bench.pruner_replay",
        "--seeds", "1", "--trials", "6", "--epochs", "3", "--zoo", "3", "--top-k-epochs", "1",
        "--percentiles", "50", "--blends", "0", "1", "--out", str(out), "--plot", str(png),
    ]  # fmt: skip

    def table_rows(*extra: str) -> list[str]:
        run = subprocess.run(
            [sys.executable, *args, *extra], capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, run.stderr[-3000:]
        return [line for line in out.read_text().splitlines() if line.startswith("| ")][1:]

    saved = tmp_path / "z3.joblib"
    rows = table_rows("--save-regressor", str(saved))
    reloaded = table_rows("--regressor", str(saved))
    sne = [r for r in rows if r.startswith("| SNEPruner")]
    assert sne and sne == [r for r in reloaded if r.startswith("| SNEPruner")]
    names = [r.split(" | ")[0].lstrip("| ") for r in rows]
    assert names == [
        "MedianPruner", "SuccessiveHalvingPruner", "HyperbandPruner",
        "PercentilePruner(50), warm-up 1", "SNEPruner p50 w1 learning_curve=0",
        "SNEPruner p50 w1 learning_curve=1", "top 25% after 1 epochs",
    ]  # fmt: skip
    for row in rows:
        share = float(row.split(" | ")[1].rstrip("%"))
        lost = float(row.split(" | ")[2].split(" ")[0])
        assert 0 < share <= 100 and lost >= 0  # a replay keeps a subset of the same trials
    assert png.read_bytes()[:4] == b"\x89PNG"
