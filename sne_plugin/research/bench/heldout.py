"""Pruners replayed on searches the pretrained predictor has never seen.

    python -m sne_plugin.research.metazoo held-out            # record the searches (once)
    python -m sne_plugin.research.bench.heldout --out benchmarks/results/heldout.md \\
        --plot benchmarks/results/heldout.png

Each held-out search (:data:`sne_plugin.research.metazoo.HELD_OUT`: a residual CNN on
procedural shapes, a tiny ViT and a 1-D CNN on font-rendered letters; none of their datasets
or architecture families is in the meta-zoo) is recorded once, unpruned, as ``seeds`` random
searches of ``trials`` trials each, every trial's validation accuracy and weights after every
epoch kept. Each pruner is replayed on the same trials through the real Optuna API
(:func:`sne_plugin.research.bench.pruner_replay.replay`: ``trial.report``, ``report_weights``,
``should_prune``, ``study.tell``; steps are epochs, from 1). Reported per pruner and search:
epochs trained as a share of the unpruned search, and the points lost on the best final
accuracy against it (mean, standard error over seeds, and how many seeds lost more than 0.5).

``--space meta`` replays the same rivals on pseudo-searches cut from the meta-zoo instead
(its models' first 8 epochs, weights at epochs 1, 2, 4 and 8): that is where SNEPruner's
default rule was chosen, so that no held-out search chose a setting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from sne_plugin.integrations.optuna import SNEPruner
from sne_plugin.integrations.optuna._pruner import DEFAULT_CURVE_PERCENTILE
from sne_plugin.pretrained import CurvePredictor, load_pretrained
from sne_plugin.research.bench.pruner_replay import (
    Outcome,
    Search,
    plot,
    replay,
    summarise,
    table,
    top_k,
)
from sne_plugin.research.metazoo import HELD_OUT, HeldOutSearch

__all__ = ["ZeroCorrection", "held_out_searches", "main", "meta_searches", "rivals"]


class ZeroCorrection:
    """A correction model that adds nothing: CurvePredictor(ZeroCorrection()) ranks trials
    by the curve alone, under SNEPruner's rule (the rival that isolates what weights add)."""

    def transform(self, X: list[Any]) -> np.ndarray:
        return np.zeros((len(X), 1))

    def predict_embedded(self, z: Any, side: Any) -> np.ndarray:
        return np.zeros(len(z))

    def predict(self, X: list[Any], side: Any = None) -> np.ndarray:
        return np.zeros(len(X))


def _curves(zoo: Any, epochs: int) -> np.ndarray:
    return np.array(
        [[float(r["acc_by_epoch"][e]) for e in range(1, epochs + 1)] for r in zoo.records]
    )


def held_out_searches(root: Path, search: HeldOutSearch) -> list[Search]:
    """The recorded seeds of one held-out search (weights read once per epoch)."""
    from sne_plugin.research.zoo import load_zoo

    zoo = load_zoo(root / search.spec().name)
    if len(zoo) < search.trials * search.seeds:
        raise SystemExit(
            f"{search.name}: {len(zoo)} of {search.trials * search.seeds} trials recorded; "
            "run `python -m sne_plugin.research.metazoo held-out` first"
        )
    values = _curves(zoo, search.epochs)
    by_epoch = [zoo.weights(e) for e in range(1, search.epochs + 1)]
    out = []
    for s in range(search.seeds):
        idx = range(s * search.trials, (s + 1) * search.trials)
        weights = [[by_epoch[e][i] for e in range(search.epochs)] for i in idx]
        out.append(Search(s, values[list(idx)], weights))
    return out


def meta_searches(root: Path, trials: int = 32, epochs: int = 8) -> list[Search]:
    """Pseudo-searches cut from the meta-zoo: ``trials`` models each, their first ``epochs``
    epochs, weights where saved (1, 2, 4, 8)."""
    from sne_plugin.research.pretrain import meta_zoos

    out: list[Search] = []
    for zoo in meta_zoos(root):
        saved = [e for e in (1, 2, 4, 8) if e <= epochs]
        nets = {e: zoo.weights(e) for e in saved}
        values = _curves(zoo, epochs)
        for start in range(0, len(zoo) - trials + 1, trials):
            idx = list(range(start, start + trials))
            weights = [
                [nets[e][i] if e in nets else None for e in range(1, epochs + 1)] for i in idx
            ]
            out.append(Search(len(out), values[idx], weights))
    return out


def rivals(
    epochs: int,
    *,
    percentile: float,
    warmup: int,
    online: bool,
    min_trials: int | None = None,
    candidate: Path | None = None,
) -> dict[str, Callable[[], optuna.pruners.BasePruner]]:
    """Optuna's pruners at their defaults; SNEPruner() at its defaults (the shipped predictor,
    its correction at the weight chosen on the meta-zoo); the same predictor with the weights'
    correction at full weight, zero-shot and fine-tuned on the study's finished trials; the
    curve alone under SNEPruner's rule (when the default is not already that); with
    ``online``, online-only; with ``candidate``, the predictor saved in that folder, zero-shot,
    under the same rule."""
    shipped = load_pretrained()
    full = CurvePredictor(shipped.regressor, shipped.info, shrink=1.0, curve=shipped.curve)
    rule: dict[str, Any] = {"percentile": percentile, "n_warmup_steps": warmup}
    if min_trials is not None:
        rule["n_min_trials"] = min_trials
    out: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
        "NopPruner": optuna.pruners.NopPruner,
        "MedianPruner": optuna.pruners.MedianPruner,
        "SuccessiveHalvingPruner": optuna.pruners.SuccessiveHalvingPruner,
        "HyperbandPruner": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3
        ),
        f"SNEPruner() default (correction weight {shipped.shrink:g})": partial(SNEPruner, **rule),
        "SNEPruner() without its early rule (early_percentile=None)": partial(
            SNEPruner, early_percentile=None, **rule
        ),
        "SNEPruner, correction weight 1, zero-shot": partial(SNEPruner, full, online=False, **rule),
        "SNEPruner, correction weight 1, fine-tuned": partial(SNEPruner, full, **rule),
    }
    if shipped.shrink or shipped.curve is not None:
        curve = CurvePredictor(ZeroCorrection(), {"model": "none"}, shrink=0.0)
        out["rank_now alone, SNEPruner's rule"] = partial(SNEPruner, curve, online=False, **rule)
    if candidate is not None:
        cand = load_pretrained(candidate)
        out[f"candidate {candidate.name}"] = partial(SNEPruner, cand, online=False, **rule)
    if online:
        out["SNEPruner online-only"] = partial(SNEPruner, online=True, **rule)
    return out


def run(
    searches: list[Search],
    epochs: int,
    *,
    percentile: float,
    warmup: int,
    online: bool,
    top: tuple[tuple[int, float], ...] = ((2, 0.25), (3, 0.25)),
    only: list[str] | None = None,
    min_trials: int | None = None,
    candidate: Path | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every rival (or those whose name contains one of ``only``) on every search; rows for
    :func:`table`, and seconds per rival."""
    makers = rivals(
        epochs,
        percentile=percentile,
        warmup=warmup,
        online=online,
        min_trials=min_trials,
        candidate=candidate,
    )
    if only:
        makers = {k: v for k, v in makers.items() if any(o in k for o in only)}
        top = ()
    outcomes: dict[str, list[Outcome]] = {}
    seconds: dict[str, float] = {}
    for search in searches:
        for name, make in makers.items():
            t0 = time.perf_counter()
            outcomes.setdefault(name, []).append(replay(search, make(), first_step=1))
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        for k, share in top:
            if k < epochs:
                outcomes.setdefault(f"top {share:.0%} after {k} epochs", []).append(
                    top_k(search, k, share)
                )
    rows = [summarise(name, searches, outs) for name, outs in outcomes.items()]
    return rows, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sne_plugin.research.bench.heldout",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--space", choices=["held-out", "meta"], default="held-out")
    parser.add_argument(
        "--root", type=Path, default=None, help="default runs/heldout or runs/metazoo"
    )
    parser.add_argument("--searches", nargs="+", default=[s.name for s in HELD_OUT])
    parser.add_argument("--seeds", type=int, default=None, help="first N seeds only")
    parser.add_argument("--percentile", type=float, nargs="+", default=[None])
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--min-trials", type=int, default=None, help="default: SNEPruner's")
    parser.add_argument(
        "--candidate", type=Path, default=None, help="also this saved predictor, zero-shot"
    )
    parser.add_argument("--online", action="store_true", help="also online-only SNEPruner")
    parser.add_argument("--only", nargs="+", default=None, help="rivals whose name has one of")
    parser.add_argument("--out", type=Path, default=None, help="append the tables here")
    parser.add_argument("--plot", type=Path, default=None, help="PNG per search: NAME-<search>")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import inspect
    import warnings

    warnings.filterwarnings("ignore", module="optuna")
    defaults = inspect.signature(SNEPruner).parameters
    warmup = defaults["n_warmup_steps"].default if args.warmup is None else args.warmup
    min_trials = defaults["n_min_trials"].default if args.min_trials is None else args.min_trials
    info = load_pretrained().info
    print(f"pretrained predictor: {json.dumps({k: info[k] for k in ('model', 'n_samples')})}")
    if args.space == "meta":
        jobs = [("meta-zoo pseudo-searches", meta_searches(args.root or Path("runs/metazoo")), 8)]
    else:
        by_name = {s.name: s for s in HELD_OUT}
        jobs = [
            (
                name,
                held_out_searches(args.root or Path("runs/heldout"), by_name[name]),
                by_name[name].epochs,
            )
            for name in args.searches
        ]
    report = []
    for name, searches, epochs in jobs:
        searches = searches[: args.seeds] if args.seeds else searches
        for p in args.percentile:
            pct = DEFAULT_CURVE_PERCENTILE if p is None else p
            t0 = time.perf_counter()
            rows, seconds = run(
                searches,
                epochs,
                percentile=pct,
                warmup=warmup,
                online=args.online,
                only=args.only,
                min_trials=min_trials,
                candidate=args.candidate,
            )
            head = (
                f"### {name}: {len(searches)} seeds x {len(searches[0].values)} trials x {epochs} "
                f"epochs; SNEPruner rule percentile={pct:g}, n_warmup_steps={warmup}, "
                f"n_min_trials={min_trials} "
                f"({time.perf_counter() - t0:.0f} s)"
            )
            cost = ", ".join(f"{k} {v / len(searches):.1f} s" for k, v in seconds.items())
            text = f"{head}\n\n{table(rows)}\n\nReplay seconds per search: {cost}\n"
            print(text, flush=True)
            report.append(text)
            if args.plot:
                path = args.plot.with_name(f"{args.plot.stem}-{name}{args.plot.suffix}")
                plot(rows, path, group=str, title=f"{name}: replayed, mean ± s.e. over seeds")
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
