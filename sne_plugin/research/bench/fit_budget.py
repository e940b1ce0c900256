"""Kendall's tau against fit time: SNE, SNE light, NFN-HNP and StatNN on one zoo.

    python -m sne_plugin.research.bench.fit_budget --zoo runs/zoo_small_cnn_digits --seeds 3 --jobs 2 \
        --out benchmarks/results/fit_budget.md

Each method is fitted with several epoch caps (its own early stopping stays on) on the same
80/20 splits; every fit records its wall time and the test tau. Fit time is given per 1,000
training networks so that it reads against the 10-minute goal of ``sne_plugin/research/bench/perf.py``.
The summary answers: how long does each method take to reach the tau of NFN-HNP at its
defaults? Each finished fit is appended to ``OUT.jsonl`` at once, and a rerun skips the
cells already there (delete the file to start over). Units run in ``--jobs`` worker
processes with one torch thread each, so every method is timed under the same load;
compare within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import kendalltau

from sne_plugin.research.bench.methods import LIGHT  # the benchmark's cheaper CPU setting

GRID: dict[str, tuple[int | None, ...]] = {
    # None: the estimator's default epoch cap (SNE 80, NFN-HNP 50; early stopping on).
    "SNE": (2, 3, 5, 10, 20, None),
    "SNE light": (2, 3, 5, 10, 20, None),
    "NFN-HNP": (10, 25, None),
    "StatNN": (None,),
}


def make(method: str, epochs: int | None, seed: int) -> Any:
    """The estimator of one grid cell, on the CPU."""
    extra: dict[str, Any] = {} if epochs is None else {"epochs": epochs}
    if method.startswith("SNE"):
        from sne_plugin import SNERegressor

        light = LIGHT if method == "SNE light" else {}
        return SNERegressor(device="cpu", random_state=seed, **light, **extra)
    if method == "NFN-HNP":
        from sne_plugin.research.baselines.nfn import NFNRegressor

        return NFNRegressor(mode="hnp", device="cpu", random_state=seed, **extra)
    from sne_plugin.research.baselines import StatNNRegressor

    return StatNNRegressor(random_state=seed)


def run_unit(zoo_path: str, method: str, epochs: int | None, seed: int) -> dict[str, Any]:
    """Fit one grid cell on split ``seed``; runs in a worker process with one thread."""
    import torch

    from sne_plugin.research.zoo import load_zoo

    torch.set_num_threads(1)
    zoo = load_zoo(zoo_path)
    X, y = zoo.weights(epoch="final"), zoo.targets("test_acc")
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    train, test = order[:cut], order[cut:]
    est = make(method, epochs, seed)
    start = time.perf_counter()
    est.fit([X[i] for i in train], y[train])
    fit_s = time.perf_counter() - start
    pred = est.predict([X[i] for i in test])
    return {
        "method": method,
        "epochs": "default" if epochs is None else epochs,
        "epochs_run": int(getattr(est, "n_epochs_", 0)) or None,
        "seed": seed,
        "fit_s_per_1k": 1000 * fit_s / len(train),
        "tau": float(kendalltau(pred, y[test]).statistic),
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of each grid cell."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["method"], str(r["epochs"])), []).append(r)
    out = []
    for (method, epochs), rs in cells.items():
        fit = np.array([r["fit_s_per_1k"] for r in rs])
        tau = np.array([r["tau"] for r in rs])
        run = [r["epochs_run"] for r in rs if r["epochs_run"]]
        out.append(
            {
                "method": method,
                "epochs": epochs,
                "n": len(rs),
                "epochs_run": float(np.mean(run)) if run else float("nan"),
                "fit_s_per_1k": float(fit.mean()),
                "fit_sd": float(fit.std()),
                "tau": float(tau.mean()),
                "tau_sd": float(tau.std()),
            }
        )
    methods = list(GRID)
    return sorted(out, key=lambda s: (methods.index(s["method"]), _cap_order(s["epochs"])))


def _cap_order(epochs: str) -> float:
    return math.inf if epochs == "default" else float(epochs)


def report(summary: list[dict[str, Any]], zoo: str, seeds: int, jobs: int) -> str:
    """Markdown: the grid, then the cheapest fit of each method at NFN-HNP's default tau."""
    lines = [
        f"Zoo `{zoo}`, 80/20 splits, {seeds} seeds, {jobs} worker processes x 1 torch thread.",
        "",
        "| method | epoch cap | epochs run | fit s per 1,000 networks | test tau |",
        "|---|---|---|---|---|",
    ]
    for s in summary:
        run = "" if np.isnan(s["epochs_run"]) else f"{s['epochs_run']:.0f}"
        lines.append(
            f"| {s['method']} | {s['epochs']} | {run} | {s['fit_s_per_1k']:.0f} ± "
            f"{s['fit_sd']:.0f} | {s['tau']:.3f} ± {s['tau_sd']:.3f} |"
        )
    ref = next((s for s in summary if s["method"] == "NFN-HNP" and s["epochs"] == "default"), None)
    if ref is not None:
        lines += [
            "",
            f"Reference: NFN-HNP at its defaults, tau {ref['tau']:.3f}, "
            f"{ref['fit_s_per_1k']:.0f} s per 1,000 networks.",
            "",
        ]
        for method in dict.fromkeys(s["method"] for s in summary):
            reach = [s for s in summary if s["method"] == method and s["tau"] >= ref["tau"]]
            if not reach:
                lines.append(f"- {method}: never reaches it in this grid.")
                continue
            best = min(reach, key=lambda s: s["fit_s_per_1k"])
            lines.append(
                f"- {method}: reaches it at epoch cap {best['epochs']} in "
                f"{best['fit_s_per_1k']:.0f} s per 1,000 networks "
                f"({best['fit_s_per_1k'] / ref['fit_s_per_1k']:.2f}x NFN-HNP's time, "
                f"tau {best['tau']:.3f})."
            )
    return "\n".join(lines) + "\n"


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in dict.fromkeys(s["method"] for s in summary):
        cells = sorted(
            (s for s in summary if s["method"] == method), key=lambda s: s["fit_s_per_1k"]
        )
        ax.errorbar(
            [s["fit_s_per_1k"] for s in cells],
            [s["tau"] for s in cells],
            yerr=[s["tau_sd"] for s in cells],
            marker="o",
            capsize=3,
            label=method,
        )
        for s in cells:
            ax.annotate(
                str(s["epochs"]),
                (s["fit_s_per_1k"], s["tau"]),
                fontsize=7,
                xytext=(3, -9),
                textcoords="offset points",
            )
    ax.set(
        xscale="log",
        xlabel="fit time per 1,000 networks (s, log)",
        ylabel="test Kendall tau",
        title="accuracy against fit time (labels: epoch cap)",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _caps(text: str) -> tuple[str, tuple[int | None, ...]]:
    method, _, caps = text.partition("=")
    if method not in GRID or not caps:
        raise SystemExit(f"--caps expects METHOD=E,E with METHOD in {list(GRID)}, got {text!r}")
    return method, tuple(None if c == "default" else int(c) for c in caps.split(","))


def _done(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", default="runs/zoo_small_cnn_digits")
    parser.add_argument("--n-models", type=int, default=600, help="zoo size if it is built")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=list(GRID), choices=list(GRID))
    parser.add_argument(
        "--caps", nargs="*", default=[], metavar="METHOD=E,E",
        help='other epoch caps for a method, e.g. "SNE=2,5,default"',
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_budget.md"))
    args = parser.parse_args()
    grid = {**GRID, **dict(map(_caps, args.caps))}
    if not Path(args.zoo, "zoo.json").is_file():
        from sne_plugin.research.zoo import build_zoo

        build_zoo(args.zoo, "small_cnn", "digits", n_models=args.n_models, workers=args.jobs)
    log_path = args.out.with_suffix(".jsonl")
    rows = _done(log_path)  # a rerun resumes: cells already measured are kept
    done = {(r["method"], r["epochs"], r["seed"]) for r in rows}
    units = [
        (m, e, s)
        for s in range(args.seeds)
        for m in args.methods
        for e in grid[m]
        if (m, "default" if e is None else e, s) not in done
    ]
    with open(log_path, "a") as log:
        for row in Parallel(n_jobs=args.jobs, return_as="generator_unordered")(
            delayed(run_unit)(args.zoo, *u) for u in units
        ):
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            rows.append(row)
    summary = summarize(rows)
    text = report(summary, args.zoo, args.seeds, args.jobs)
    args.out.write_text(text)
    plot(summary, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
