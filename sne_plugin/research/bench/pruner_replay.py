"""Pruners replayed on recorded searches: same trials for every rule, no sampler noise.

    python -m sne_plugin.research.bench.pruner_replay --seeds 30 --zoo 32 --plot replay.png

``sne_plugin/research/bench/pruners.py`` runs each pruner live, so a pruned trial changes what TPE samples
next and two pruners end up on different searches: part of the spread between them is the
sampler's. Here each seed's search is run once with NopPruner (the search of
``sne_plugin.research.digits_search``, TPE, the same seeding as the live benchmark), keeping every
trial's validation accuracy and weights after each epoch. Every pruner is then replayed on
that fixed sequence of trials through the real Optuna API (``trial.report``,
``report_weights``, ``should_prune``, ``study.tell``; in-memory storage): a trial stops at the
step where the pruner says so. Reported per pruner: epochs trained as a share of the full
search, and the points lost on the best final accuracy against the same search unpruned
(mean, standard error over seeds, and how many seeds lost more than 0.5 points).

What a replay leaves out: a live search's later trials would differ after a pruning
decision. A rule's cost in epochs and its risk of dropping the best trial are measured
exactly; its effect on the sampler is not (the live benchmark shows that, with its noise).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from sne_plugin.integrations.optuna import SNEPruner, report_weights
from sne_plugin.readers import read_weights
from sne_plugin.research.bench import pruners as pb
from sne_plugin.weights import NetworkWeights

ex = pb.ex


@dataclass
class Search:
    """One unpruned search: per trial, the validation accuracy and weights after each epoch."""

    seed: int
    values: np.ndarray  # (trials, epochs)
    weights: list[list[Any]]

    @property
    def best(self) -> float:
        return float(self.values[:, -1].max())


def record(data: Any, seed: int, trials: int, epochs: int) -> Search:
    """The NopPruner search of the live benchmark (same sampler and seeding), weights kept."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    values, weights = [], []
    for _ in range(trials):
        trial = study.ask()
        torch.manual_seed(trial.number)
        model = ex.build(trial)
        opt, batch = ex.optimizer(trial, model)
        gen = torch.Generator().manual_seed(trial.number)
        curve, snaps = [], []
        for _epoch in range(epochs):
            ex.train_one_epoch(model, opt, data, batch, gen)
            curve.append(ex.accuracy(model, data))
            snaps.append(read_weights(model))
        study.tell(trial, curve[-1])
        values.append(curve)
        weights.append(snaps)
    return Search(seed, np.asarray(values, dtype=float), weights)


class Memo:
    """A fitted regressor whose predictions are kept per network content: every replayed
    rule sees the same numbers, and each snapshot is predicted once (``report_weights``
    hands the pruner a copy, so the key is a hash of the values, not the object)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: dict[bytes, float] = {}

    @staticmethod
    def key(net: NetworkWeights) -> bytes:
        digest = hashlib.blake2b(digest_size=16)
        for tensor in net.tensors():
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return digest.digest()

    def predict(self, nets: list[NetworkWeights]) -> np.ndarray:
        keys = [self.key(n) for n in nets]
        todo = {k: n for k, n in zip(keys, nets, strict=True) if k not in self.cache}
        if todo:
            values = self.model.predict(list(todo.values()))
            self.cache.update(zip(todo, (float(v) for v in values), strict=True))
        return np.asarray([self.cache[k] for k in keys])


@dataclass
class Outcome:
    epochs: int
    best: float
    pruned_at: list[int] = field(default_factory=list)
    best_pruned: bool = False  # the trial that ends best unpruned was stopped


def replay(search: Search, pruner: optuna.pruners.BasePruner, *, first_step: int = 0) -> Outcome:
    """Run ``search``'s trials in order under ``pruner``; a pruned trial stops at that step.

    Steps are numbered from ``first_step`` (1: the step is the number of epochs trained); a
    weights entry of None is not reported (no checkpoint at that epoch)."""
    # A fixed name: HyperbandPruner assigns brackets by a hash of the study name.
    study = optuna.create_study(study_name="replay", direction="maximize", pruner=pruner)
    sne = isinstance(pruner, SNEPruner)
    epochs, best, pruned_at, stopped = 0, -np.inf, [], set()
    for i, (curve, snaps) in enumerate(zip(search.values, search.weights, strict=True)):
        trial = study.ask()
        for step, (value, net) in enumerate(zip(curve, snaps, strict=True), start=first_step):
            epochs += 1
            trial.report(float(value), step)
            if sne and net is not None:
                report_weights(trial, net, step)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                pruned_at.append(step)
                stopped.add(i)
                break
        else:
            study.tell(trial, float(curve[-1]))
            best = max(best, float(curve[-1]))
    return Outcome(epochs, best, pruned_at, int(np.argmax(search.values[:, -1])) in stopped)


def top_k(search: Search, k_epochs: int, share: float) -> Outcome:
    """Train every trial ``k_epochs``, finish the top ``share`` by accuracy then."""
    n, total = search.values.shape
    keep = max(1, round(share * n))
    order = np.argsort(-search.values[:, k_epochs - 1], kind="stable")[:keep]
    return Outcome(
        n * k_epochs + keep * (total - k_epochs),
        float(search.values[order, -1].max()),
        best_pruned=int(np.argmax(search.values[:, -1])) not in set(order.tolist()),
    )


def rules(
    regressor: Any,
    epochs: int,
    percentiles: list[float],
    blends: list[float],
    warmups: list[int],
    online: bool = False,
) -> dict[str, Callable[[], optuna.pruners.BasePruner]]:
    """Optuna's pruners as in the live benchmark, then SNEPruner over a grid of rules
    (pretrained; with ``online``, also the example's online pruner for each blend < 1)."""
    out: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
        "MedianPruner": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
        "SuccessiveHalvingPruner": optuna.pruners.SuccessiveHalvingPruner,
        "HyperbandPruner": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3
        ),
    }
    for p in percentiles:
        for w in warmups:
            out[f"PercentilePruner({p:.0f}), warm-up {w}"] = partial(
                optuna.pruners.PercentilePruner, p, n_startup_trials=4, n_warmup_steps=w
            )
            for lc in blends:
                name = f"SNEPruner p{p:.0f} w{w} learning_curve={lc:g}"
                out[name] = partial(
                    SNEPruner,
                    regressor,
                    percentile=p,
                    n_warmup_steps=w,
                    n_min_trials=4,
                    reference="peers",
                    learning_curve=lc,
                )
                if online and lc < 1.0:
                    out[f"SNEPruner online p{p:.0f} w{w} learning_curve={lc:g}"] = partial(
                        ex.default_pruner,
                        online=True,
                        percentile=p,
                        n_warmup_steps=w,
                        n_min_trials=4,
                        learning_curve=lc,
                    )
    return out


def summarise(name: str, searches: list[Search], outcomes: list[Outcome]) -> dict[str, Any]:
    share = np.mean([o.epochs / s.values.size for s, o in zip(searches, outcomes, strict=True)])
    lost = np.array([100 * (s.best - o.best) for s, o in zip(searches, outcomes, strict=True)])
    return {
        "name": name,
        "epochs": float(share),
        "lost": float(lost.mean()),
        "se": float(lost.std(ddof=1) / np.sqrt(len(lost))) if len(lost) > 1 else float("nan"),
        "seeds_over": int((lost > 0.5).sum()),
        "best_pruned": int(sum(o.best_pruned for o in outcomes)),
        "n": len(lost),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| pruner | epochs, % of unpruned | points lost (mean ± s.e.) | seeds losing > 0.5 "
        "| seeds whose best trial was stopped |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {100 * r['epochs']:.1f}% | {r['lost']:.2f} ± {r['se']:.2f} "
            f"| {r['seeds_over']} of {r['n']} | {r.get('best_pruned', 0)} of {r['n']} |"
        )
    return "\n".join(lines)


def plot(
    rows: list[dict[str, Any]],
    path: Path,
    group: Callable[[str], str] | None = None,
    title: str = "Pruners replayed on the same recorded searches (mean ± s.e. over seeds)",
) -> None:
    """Epochs against points lost, one marker per pruner (or per ``group`` of names, by
    default SNEPruner's blends and Optuna's PercentilePruners); the goal's corner shaded."""
    group = _group if group is None else group
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.fill_between([0, 50], -1, 0.5, color="0.92", label="goal: <= 50% epochs, <= 0.5 lost")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(group(r["name"]), []).append(r)
    for i, (label, members) in enumerate(groups.items()):
        ax.errorbar(
            [100 * r["epochs"] for r in members],
            [r["lost"] for r in members],
            yerr=[r["se"] for r in members],
            fmt="o"
            if label.startswith("SNE")
            else ("s" if "Percentile" in label else "^D*vP"[i % 5]),
            ms=5,
            capsize=2,
            label=label,
            alpha=0.85,
            color=f"C{i % 10}",
        )
    ax.set_xlim(0, 105)
    ax.set_ylim(
        min(-0.05, min(r["lost"] - r["se"] for r in rows) - 0.05),
        max(0.6, max(r["lost"] + r["se"] for r in rows) + 0.05),
    )
    ax.set_xlabel("epochs trained, % of the unpruned search")
    ax.set_ylabel("points lost on the best final accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _group(name: str) -> str:
    """One legend entry per SNEPruner blend, one for Optuna's PercentilePruners."""
    if name.startswith("SNEPruner online"):
        return "SNEPruner online " + name.split(" ")[-1]
    if name.startswith("SNEPruner"):
        return "SNEPruner " + name.split(" ")[-1]
    if name.startswith("PercentilePruner"):
        return "PercentilePruner (Optuna)"
    return name


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--zoo", type=int, default=32, help="trials in the pretraining zoo")
    parser.add_argument("--first-step", type=int, default=1)
    parser.add_argument("--percentiles", type=float, nargs="+", default=[70.0, 75.0, 80.0])
    parser.add_argument("--blends", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--warmups", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--online", action="store_true", help="also the example's online SNEPruner (refits)"
    )
    parser.add_argument("--top-k-epochs", type=int, default=3)
    parser.add_argument("--top-share", type=float, default=0.25)
    parser.add_argument(
        "--regressor",
        type=Path,
        default=None,
        help="a saved SNERegressor instead of pretraining one here",
    )
    parser.add_argument(
        "--save-regressor", type=Path, default=None, help="save the pretrained regressor here"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the table here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG here")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.trials < 5 or args.epochs < 2:
        parser.error(
            f"need --seeds >= 1, --trials >= 5, --epochs >= 2, got {args.seeds}, "
            f"{args.trials}, {args.epochs}"
        )
    if not 1 <= args.top_k_epochs < args.epochs:
        parser.error(f"--top-k-epochs must be in [1, {args.epochs}), got {args.top_k_epochs}")
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = ex.load_data()
    start = time.perf_counter()
    regressor, _ = pb.pretrain(data, args)  # loads --regressor, or fits and --save-regressor
    source = (
        f"loaded from {args.regressor}"
        if args.regressor is not None
        else f"pretrained on {args.zoo} random trials (seed {pb.ZOO_SEED})"
    )
    print(f"regressor {source}, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    baseline = f"top {args.top_share:.0%} after {args.top_k_epochs} epochs"
    searches: list[Search] = []
    outcomes: dict[str, list[Outcome]] = {}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        search = record(data, seed, args.trials, args.epochs)
        memo = Memo(regressor)
        for name, make in rules(
            memo, args.epochs, args.percentiles, args.blends, args.warmups, args.online
        ).items():
            outcomes.setdefault(name, []).append(replay(search, make()))
        outcomes.setdefault(baseline, []).append(top_k(search, args.top_k_epochs, args.top_share))
        search.weights = []  # the outcomes are all that is kept
        searches.append(search)
        print(
            f"seed {seed}: best {100 * search.best:.2f}, {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    rows = [summarise(name, searches, outs) for name, outs in outcomes.items()]
    head = (
        f"{args.seeds} searches (TPE seeds {seeds.start}-{seeds.stop - 1}), {args.trials} trials "
        f"x {args.epochs} epochs, recorded unpruned and replayed under each pruner. "
        f"Unpruned best: {100 * np.mean([s.best for s in searches]):.2f} on average. "
        f"SNE regressor {source}. SNEPruner rules: reference='peers', n_min_trials=4."
    )
    text = f"{head}\n\n{table(rows)}\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            f"`python -m sne_plugin.research.bench.pruner_replay {' '.join(sys.argv[1:])}`\n\n"
            + text
        )
    if args.plot is not None:
        plot(rows, args.plot)
    return text


if __name__ == "__main__":
    main()
