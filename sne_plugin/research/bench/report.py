"""Benchmark report: markdown tables in a marker block of BENCHMARKS.md, and a scatter PNG."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sne_plugin.research.bench.methods import METHODS, MethodResult
from sne_plugin.research.bench.tasks import TaskSpec

__all__ = ["BEGIN", "END", "machine", "render", "replace_block", "scatter_png"]

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def machine(device: str = "cpu", threads: str = "1 torch thread per worker") -> str:
    """CPU model, cores, torch version and device, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
        f"device {device}, {threads}"
    )


def _mean_std(values: list[float], fmt: str = "{:.3f}") -> str:
    arr = np.asarray([v for v in values if np.isfinite(v)])
    if arr.size == 0:
        return "-"
    if arr.size == 1:
        return fmt.format(arr[0])
    return f"{fmt.format(arr.mean())} ± {fmt.format(arr.std(ddof=1))}"


def _cell(rs: list[MethodResult], key: str) -> str:
    if rs and rs[0].na:
        return "n/a"
    return _mean_std([r.scores.get(key, float("nan")) for r in rs])


def _group(results: Sequence[MethodResult]) -> dict[tuple[str, str], list[MethodResult]]:
    groups: dict[tuple[str, str], list[MethodResult]] = {}
    for r in results:
        groups.setdefault((r.task, r.method), []).append(r)
    return groups


def summary_table(
    results: Sequence[MethodResult], tasks: Sequence[TaskSpec], methods: Sequence[str]
) -> str:
    """Kendall tau (mean ± std over seeds): one row per task, one column per method."""
    groups = _group(results)
    head = "| task | " + " | ".join(METHODS[m].label for m in methods) + " |"
    lines = [head, "|---" * (len(methods) + 1) + "|"]
    for t in tasks:
        cells = [_cell(groups.get((t.name, m), []), "tau") for m in methods]
        lines.append(f"| {t.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def task_table(results: Sequence[MethodResult], task: TaskSpec, methods: Sequence[str]) -> str:
    """One task in detail: tau, tau on trained models, R^2, MAE, fit time, throughput."""
    groups = _group(results)
    lines = [
        "| method | tau | tau (acc >= 0.2) | R^2 | MAE | fit s | predict nets/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        rs = groups.get((task.name, m), [])
        if rs and rs[0].na:
            lines.append(f"| {METHODS[m].label} | n/a: {rs[0].na} | | | | | |")
            continue
        fit = _mean_std([r.fit_s for r in rs], "{:.1f}")
        rate = _mean_std([r.predict_per_s for r in rs], "{:.0f}")
        cells = [_cell(rs, k) for k in ("tau", "tau_trained", "r2", "mae")]
        lines.append(f"| {METHODS[m].label} | " + " | ".join(cells) + f" | {fit} | {rate} |")
    return "\n".join(lines)


def render(
    results: Sequence[MethodResult],
    tasks: Sequence[TaskSpec],
    methods: Sequence[str],
    *,
    command: str,
    seeds: int,
    zoo_s: float,
    total_s: float,
    notes: str = "",
    png: str | None = None,
) -> str:
    """The markdown that goes between the markers."""
    parts = [
        "## Generalization prediction benchmark",
        "",
        f"Command: `{command}`  ",
        f"Date: {dt.date.today().isoformat()}  ",
        f"Machine: {machine()}  ",
        f"Wall time: {total_s / 60:.1f} min in all, of which {zoo_s / 60:.1f} min building "
        f"missing zoos; {seeds} seeds.",
        "",
        "Kendall's tau between predicted and true final test accuracy on held-out networks, "
        "mean ± standard deviation over seeds (the seed sets the split or the 80% training "
        "subsample, and each method's random state).",
        "",
    ]
    if notes:
        parts += [notes, ""]
    parts += [summary_table(results, tasks, methods), ""]
    for t in tasks:
        parts += [f"### {t.name}: {t.description}", "", task_table(results, t, methods), ""]
    if png:
        parts += [f"![predicted vs true accuracy]({png})", ""]
    return "\n".join(parts)


def replace_block(path: str | os.PathLike[str], body: str) -> None:
    """Write ``body`` between the markers of ``path`` (created, or markers appended)."""
    file = Path(path)
    text = file.read_text() if file.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    file.write_text(text)


def scatter_png(
    results: Sequence[MethodResult],
    task: str,
    path: str | os.PathLike[str],
    methods: Sequence[str] = ("sne", "statnn"),
) -> bool:
    """Predicted vs true accuracy of ``methods`` on ``task`` (the run's first seed: 0 unless
    ``--first-seed`` moved it); False if none ran."""
    seeds = [r.seed for r in results if r.task == task]
    first = min(seeds) if seeds else 0
    chosen = [
        r
        for r in results
        if r.task == task and r.seed == first and r.method in methods and r.y_pred is not None
    ]
    if not chosen:
        return False
    from sne_plugin._imports import optional_import

    mpl = optional_import("matplotlib", extra="plot")
    mpl.use("Agg")
    plt = optional_import("matplotlib.pyplot", extra="plot")
    fig, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 4), squeeze=False)
    for ax, r in zip(axes[0], chosen):
        ax.scatter(r.y_true, r.y_pred, s=8, alpha=0.6)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set(
            title=f"{METHODS[r.method].label}: tau {r.scores['tau']:.3f}",
            xlabel="true test accuracy",
            ylabel="predicted",
            xlim=(0, 1),
            ylim=(0, 1),
        )
    fig.suptitle(f"{task}, seed {first}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
