"""sne_plugin/research/bench/fit_budget.py runs end to end on a tiny zoo, and a rerun resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "sne_plugin.research.bench.fit_budget", *args],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_fit_budget_writes_its_table_and_resumes(smoke_cache: Path, tmp_path: Path) -> None:
    zoo = next(p for p in smoke_cache.iterdir() if p.name.startswith("mlp_w16_digits"))
    out = tmp_path / "fit_budget.md"
    args = [
        "--zoo", str(zoo), "--seeds", "1", "--jobs", "1", "--out", str(out),
        "--methods", "SNE", "StatNN", "--caps", "SNE=1,2",
    ]  # fmt: skip
    _run(args, tmp_path)
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert sorted((r["method"], str(r["epochs"])) for r in rows) == [
        ("SNE", "1"), ("SNE", "2"), ("StatNN", "default"),
    ]  # fmt: skip
    assert all(r["fit_s_per_1k"] > 0 for r in rows)
    # 4 test networks: a constant prediction (StatNN here) gives tau NaN; SNE's is a number
    assert all(-1 <= r["tau"] <= 1 for r in rows if r["method"] == "SNE")
    assert "| SNE | 2 | 2 |" in out.read_text()
    assert out.with_suffix(".png").stat().st_size > 0
    _run(args, tmp_path)  # every cell is done: nothing is fitted again
    assert len(out.with_suffix(".jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_fit_budget_rejects_a_bad_cap(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sne_plugin.research.bench.fit_budget", "--caps", "SNE2"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode != 0 and "--caps expects METHOD=E,E" in out.stderr
