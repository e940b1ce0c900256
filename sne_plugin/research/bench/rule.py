"""Choosing SNEPruner's default rule on the meta-zoo, by simulation.

    python -m sne_plugin.research.bench.rule --root runs/metazoo

The curve-aware rule of :class:`~sne_plugin.integrations.optuna._curve.CurveEngine`, with
weights reported at every step (what its examples do), re-implemented over recorded curves so
that a grid of rules runs in seconds: trials arrive one at a time, in order; at step ``k`` a
trial's peers are the earlier trials at their last step ``<= k`` (a pruned one at its last
value), each row's curve features are ranked among the rows, progress is the step over the
last step of the trials that completed, and the trial stops when its score ranks below the
``percentile``-th percentile of its peers' scores, from step ``warmup`` on, once it has
``min_trials`` peers. The rule chosen here is then replayed through the real Optuna API on the
same pseudo-searches and on the held-out searches (:mod:`sne_plugin.research.bench.heldout`).

Pseudo-searches: each meta-zoo zoo cut into searches of ``trials`` models, their first 8
epochs; the objective is the accuracy after epoch 8. A score is either ``rank_now`` (the
curve's own rank) or a :class:`~sne_plugin.curve.CurveModel` fitted with the searched zoo
left out (the whole zoo, so a search never sees a model of its own zoo).

Reported per rule: epochs as a share of the unpruned searches, points lost on the best
(mean), the share of searches losing more than 0.5 points, and the share whose best trial was
stopped: the rate a user can reason about ("how often did it drop the trial that would have
won").
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sne_plugin.curve import curve_features

__all__ = ["Rule", "simulate", "summarise_rule"]

Score = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Rule:
    """``percentile``: one number, or one per step from step 1 (the last one repeats)."""

    percentile: float | tuple[float, ...]
    warmup: int
    min_trials: int
    # with fewer than ``min_trials`` but at least ``early_trials`` peers, prune below this
    # percentile of them instead (None: never prune before ``min_trials`` peers)
    early_percentile: float | None = None
    early_trials: int = 2

    def at(self, step: int) -> float:
        p = self.percentile
        if isinstance(p, tuple):
            return float(p[min(step, len(p)) - 1])
        return float(p)

    @property
    def name(self) -> str:
        p = self.percentile
        pct = "/".join(f"{x:g}" for x in p) if isinstance(p, tuple) else f"{p:g}"
        early = ""
        if self.early_percentile is not None:
            early = f", p{self.early_percentile:g} from {self.early_trials}"
        return f"p{pct} warm-up {self.warmup} min {self.min_trials}{early}"


def simulate(values: np.ndarray, score: Score, rule: Rule) -> tuple[int, float, bool]:
    """One search (``values``: trials x epochs, epoch ``k`` in column ``k - 1``) under ``rule``:
    epochs trained, best final value among the completed trials, and whether the trial that
    ends best unpruned was stopped."""
    n, total = values.shape
    last = np.zeros(n, dtype=int)  # last step trained, per trial
    completed = np.zeros(n, dtype=bool)
    epochs = 0
    cummax = np.maximum.accumulate(values, axis=1)
    for i in range(n):
        for k in range(1, total + 1):
            epochs += 1
            last[i] = k
            early = i < rule.min_trials
            if k < rule.warmup or (
                early and (rule.early_percentile is None or i < rule.early_trials)
            ):
                continue
            steps = np.minimum(last[: i + 1], k)  # each row's step (own: k)
            rows = np.arange(i + 1)
            now = values[rows, steps - 1]
            prev = np.where(steps >= 2, values[rows, np.maximum(steps - 2, 0)], np.nan)
            best = cummax[rows, steps - 1]
            planned = total if completed[:i].any() else np.nan
            side = curve_features(now, prev, best, steps / planned)
            s = score(side)
            # own row last in ``rows``
            pct = (
                rule.at(k) if not early or rule.early_percentile is None else rule.early_percentile
            )
            if s[i] < np.percentile(s[:i], pct):
                break
        else:
            completed[i] = True
    finals = values[:, -1]
    got = float(finals[completed].max()) if completed.any() else -np.inf
    return epochs, got, not completed[int(np.argmax(finals))]


def summarise_rule(
    searches: Sequence[np.ndarray], outs: Sequence[tuple[int, float, bool]]
) -> dict[str, float]:
    share = np.mean([o[0] / v.size for v, o in zip(searches, outs, strict=True)])
    lost = np.array([100 * (v[:, -1].max() - o[1]) for v, o in zip(searches, outs, strict=True)])
    return {
        "epochs": float(share),
        "lost": float(lost.mean()),
        "se": float(lost.std(ddof=1) / np.sqrt(len(lost))),
        "over": float((lost > 0.5).mean()),
        "best_stopped": float(np.mean([o[2] for o in outs])),
        "n": len(outs),
    }


def _meta(
    root: Path, trials: Sequence[int], epochs: int = 8, shuffle: int | None = None
) -> list[tuple[int, int, np.ndarray]]:
    """(zoo index, trials per search, values) of every pseudo-search; with ``shuffle``, each
    zoo's models in a random order of that seed first (other searches, other arrival orders)."""
    from sne_plugin.research.pretrain import meta_zoos

    out = []
    for zi, zoo in enumerate(meta_zoos(root)):
        values = np.array(
            [[float(r["acc_by_epoch"][e]) for e in range(1, epochs + 1)] for r in zoo.records]
        )
        if shuffle is not None:
            values = values[np.random.default_rng([shuffle, zi]).permutation(len(values))]
        for t in trials:
            for start in range(0, len(zoo) - t + 1, t):
                out.append((zi, t, values[start : start + t]))
    return out


def _scores(root: Path, degree: int) -> dict[str, Callable[[int], Score]]:
    """Score makers by name: each takes the searched zoo's index (left out of the fit)."""
    from sne_plugin.curve import CurveModel
    from sne_plugin.research.pretrain import curve_samples, meta_zoos

    zoos = meta_zoos(root)
    models: dict[int, Any] = {}

    def curve_model(zi: int) -> Score:
        if zi not in models:
            s = curve_samples([z for j, z in enumerate(zoos) if j != zi])
            models[zi] = CurveModel(degree).fit(s.side, s.target)
        return models[zi].predict

    def rank_now(zi: int) -> Score:
        return lambda side: np.nan_to_num(side[:, 0], nan=0.5)

    def rank_best(zi: int) -> Score:  # the best value so far, ranked among the peers' best
        return lambda side: np.nan_to_num(side[:, 2], nan=0.5)

    def rank_mix(zi: int) -> Score:  # the mean of the two
        return lambda side: np.nan_to_num((side[:, 0] + side[:, 2]) / 2, nan=0.5)

    return {
        "rank_now": rank_now,
        "rank_best": rank_best,
        "rank_mix": rank_mix,
        f"curve model (degree {degree}, zoo left out)": curve_model,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sne_plugin.research.bench.rule",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=Path("runs/metazoo"))
    parser.add_argument("--trials", type=int, nargs="+", default=[16, 32])
    parser.add_argument(
        "--percentile",
        nargs="+",
        default=["70", "75", "80", "85", "90"],
        help="a number, or one per step joined by '/' (the last repeats): 50/75/80",
    )
    parser.add_argument("--warmup", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--min-trials", type=int, nargs="+", default=[3, 5, 8])
    parser.add_argument("--degree", type=int, default=3)
    parser.add_argument(
        "--shuffle", type=int, default=None, help="cut the searches from a shuffled zoo (seed)"
    )
    parser.add_argument(
        "--early",
        nargs="*",
        default=[],
        help="PERCENTILE@PEERS: before --min-trials peers, from PEERS on, prune below this",
    )
    parser.add_argument(
        "--scores",
        nargs="+",
        default=["rank_now", "curve"],
        choices=["rank_now", "rank_best", "rank_mix", "curve"],
    )
    parser.add_argument("--top", type=int, nargs="*", default=[2], help="top 25%% after K epochs")
    args = parser.parse_args(argv)
    searches = _meta(args.root, args.trials, shuffle=args.shuffle)
    if not searches:
        raise SystemExit(f"no complete zoo under {args.root}: build the meta-zoo first")
    print(f"{len(searches)} pseudo-searches ({args.trials} trials x 8 epochs)", flush=True)
    from sne_plugin.research.bench.pruner_replay import Search, top_k

    print("| rule | score | epochs | lost ± s.e. | searches losing > 0.5 | best trial stopped |")
    print("|---|---|---|---|---|---|")
    for k in args.top:
        tops = [top_k(Search(0, v, []), k, 0.25) for _, _, v in searches]
        row = summarise_rule(
            [v for _, _, v in searches], [(o.epochs, o.best, o.best_pruned) for o in tops]
        )
        print(_line(f"top 25% after {k} epochs (offline)", "-", row), flush=True)
    for name, make in _scores(args.root, args.degree).items():
        if not any(name.startswith(x) for x in args.scores):
            continue
        t0 = time.perf_counter()
        earlies: list[tuple[float | None, int]] = [(None, 2)] + [
            (float(e.split("@")[0]), int(e.split("@")[1])) for e in args.early
        ]
        grid = itertools.product(args.percentile, args.warmup, args.min_trials, earlies)
        for p, w, m, (ep, et) in grid:
            parts = tuple(float(x) for x in str(p).split("/"))
            rule = Rule(parts if len(parts) > 1 else parts[0], w, m, ep, et)
            outs = [simulate(v, make(zi), rule) for zi, _, v in searches]
            row = summarise_rule([v for _, _, v in searches], outs)
            print(_line(rule.name, name, row), flush=True)
        print(f"<!-- {name}: {time.perf_counter() - t0:.0f} s -->", flush=True)
    return 0


def _line(rule: str, score: str, r: dict[str, float]) -> str:
    return (
        f"| {rule} | {score} | {100 * r['epochs']:.1f}% | {r['lost']:.2f} ± {r['se']:.2f} "
        f"| {100 * r['over']:.0f}% | {100 * r['best_stopped']:.0f}% |"
    )


if __name__ == "__main__":
    sys.exit(main())
