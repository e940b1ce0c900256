"""Pruners compared on the CNN-on-digits search of ``sne_plugin.research.digits_search``.

Same search space, TPE sampler and seeds for every pruner: NopPruner, MedianPruner,
SuccessiveHalvingPruner, HyperbandPruner, a "train k epochs, keep the top ones" baseline,
and SNEPruner online and pretrained (on a regressor fitted to a separate zoo of trials made
here with another seed; the zoo's cost is reported apart). Reports per pruner the epochs
trained, the best final validation accuracy (mean +- std over seeds), wall time, and the
time spent in ``report_weights`` + ``should_prune`` per step as a share of one epoch.

    python -m sne_plugin.research.bench.pruners --small            # < 10 minutes on 2 CPU cores
    python -m sne_plugin.research.bench.pruners --seeds 5 --trials 60 --epochs 15
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from sne_plugin import SNERegressor
from sne_plugin.integrations.optuna import SNEPruner
from sne_plugin.research import digits_search as ex
from sne_plugin.research.digits_search import KEEP_RULE

ZOO_SEED = 1000


@dataclass
class Run:
    """One search: its cost and outcome."""

    epochs: int
    best: float
    wall_s: float
    hook_s: float
    hook_calls: int
    epoch_s: float


# ---------------------------------------------------------------------- the pruners
# The pretraining zoo and regressor are the example's (``--pretrain``), shared here.
RandomTrial = ex.RandomTrial
random_trials = ex.random_trials
fit_pretrained = ex.fit_pretrained


def pretrain(data: Any, args: argparse.Namespace) -> tuple[SNERegressor, float]:
    """An SNERegressor fitted on a separate zoo: random configurations, seed ``ZOO_SEED``
    (or loaded from ``--regressor``, made by an earlier run's ``--save-regressor``)."""
    start = time.perf_counter()
    if args.regressor is not None:
        return SNERegressor.load(args.regressor), float("nan")
    zoo = random_trials(data, args.zoo, args.epochs, ZOO_SEED)
    regressor = fit_pretrained(zoo, args.first_step)
    if args.save_regressor is not None:
        regressor.save(args.save_regressor)
    return regressor, time.perf_counter() - start


def pruners(
    epochs: int, pretrained: SNERegressor
) -> dict[str, Callable[[], optuna.pruners.BasePruner]]:
    return {
        "NopPruner": optuna.pruners.NopPruner,
        "MedianPruner": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
        "SuccessiveHalvingPruner": optuna.pruners.SuccessiveHalvingPruner,
        "HyperbandPruner": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3
        ),
        # The learning curve alone under the same rule as SNEPruner's (the rival to beat).
        f"PercentilePruner({KEEP_RULE['percentile']:.0f})": lambda: optuna.pruners.PercentilePruner(
            KEEP_RULE["percentile"],
            n_startup_trials=KEEP_RULE["n_min_trials"],
            n_warmup_steps=KEEP_RULE["n_warmup_steps"],
        ),
        "SNEPruner (online)": lambda: ex.default_pruner(online=True, **KEEP_RULE),
        # Weights only, then the default blend of the weights' and the curve's ranks.
        "SNEPruner (pretrained)": lambda: SNEPruner(pretrained, learning_curve=0.0, **KEEP_RULE),
        "SNEPruner (pretrained + learning curve)": lambda: SNEPruner(
            pretrained, learning_curve=0.5, **KEEP_RULE
        ),
    }


# ---------------------------------------------------------------------- one search
def run_pruner(
    name: str, make: Callable[[], Any], data: Any, args: argparse.Namespace, seed: int
) -> Run:
    pruner = make()
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner
    )
    ledger = ex.Ledger()
    objective = ex.make_objective(
        data, args.epochs, use_sne=isinstance(pruner, SNEPruner), ledger=ledger
    )
    start = time.perf_counter()
    study.optimize(objective, n_trials=args.trials)
    return _run(ledger, study.best_value, time.perf_counter() - start)


def run_top_k(data: Any, args: argparse.Namespace, seed: int) -> Run:
    """Train every trial ``k`` epochs (TPE told that accuracy), then finish the top share."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    ledger, start, started = ex.Ledger(), time.perf_counter(), []
    for _ in range(args.trials):
        trial = study.ask()
        torch.manual_seed(trial.number)
        model = ex.build(trial)
        opt, batch = ex.optimizer(trial, model)
        gen = torch.Generator().manual_seed(trial.number)
        _train(model, opt, data, batch, gen, args.top_k_epochs, ledger)
        acc = ex.accuracy(model, data)
        study.tell(trial, acc)
        started.append((acc, trial.number, model, opt, batch, gen))
    n_keep = max(1, round(args.top_share * args.trials))
    finals = []
    for _, _, model, opt, batch, gen in sorted(started, key=lambda s: (-s[0], s[1]))[:n_keep]:
        _train(model, opt, data, batch, gen, args.epochs - args.top_k_epochs, ledger)
        finals.append(ex.accuracy(model, data))
    return _run(ledger, max(finals), time.perf_counter() - start)


def _train(model: Any, opt: Any, data: Any, batch: int, gen: Any, epochs: int, ledger: Any) -> None:
    for _ in range(epochs):
        start = time.perf_counter()
        ex.train_one_epoch(model, opt, data, batch, gen)
        ledger.train_s += time.perf_counter() - start
        ledger.epochs += 1


def _run(ledger: Any, best: float, wall: float) -> Run:
    epoch_s = ledger.train_s / max(ledger.epochs, 1)
    return Run(ledger.epochs, best, wall, ledger.hook_s, ledger.hook_calls, epoch_s)


# ---------------------------------------------------------------------- report
def table(results: dict[str, list[Run]], args: argparse.Namespace, zoo_s: float) -> str:
    nop = np.mean([r.epochs for r in results["NopPruner"]])
    lines = [
        f"Search: {args.trials} trials x {args.epochs} epochs, TPE, seeds {args.seeds_list}; "
        f"torch threads {args.threads}. "
        + (
            f"Pretrained regressor loaded from {args.regressor}."
            if args.regressor is not None
            else f"Pretrained zoo: {args.zoo} trials, seed {ZOO_SEED}, {zoo_s:.0f} s "
            "(not counted below)."
        ),
        "",
        "| pruner | epochs trained | % of NopPruner | best final accuracy | wall s | "
        "hooks per step, % of one epoch |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        epochs = np.mean([r.epochs for r in runs])
        best = np.array([r.best for r in runs]) * 100
        wall = np.mean([r.wall_s for r in runs])
        hook = _hook_share(runs)
        lines.append(
            f"| {name} | {epochs:.0f} | {100 * epochs / nop:.0f}% | {best.mean():.2f} ± {best.std():.2f} "
            f"| {wall:.0f} | {hook} |"
        )
    return "\n".join([*lines, "", *verdicts(results)]) + "\n"


def _hook_share(runs: list[Run]) -> str:
    calls = sum(r.hook_calls for r in runs)
    if not calls:
        return "-"
    per_step = sum(r.hook_s for r in runs) / calls
    per_epoch = np.mean([r.epoch_s for r in runs])
    return (
        f"{100 * per_step / per_epoch:.0f}% ({1000 * per_step:.1f} ms / {1000 * per_epoch:.1f} ms)"
    )


def verdicts(results: dict[str, list[Run]]) -> list[str]:
    """The goal, checked honestly: <= 50% of NopPruner's epochs, <= 0.5 points lost, < Median."""
    nop_epochs = np.mean([r.epochs for r in results["NopPruner"]])
    nop_best = 100 * np.mean([r.best for r in results["NopPruner"]])
    med_epochs = np.mean([r.epochs for r in results["MedianPruner"]])
    med_best = 100 * np.mean([r.best for r in results["MedianPruner"]])
    out = []
    for name in (n for n in results if n.startswith("SNEPruner")):
        epochs = np.mean([r.epochs for r in results[name]])
        best = 100 * np.mean([r.best for r in results[name]])
        half = epochs <= 0.5 * nop_epochs and best >= nop_best - 0.5
        median = epochs < med_epochs and best >= med_best - 0.5
        out.append(
            f"- {name}: {epochs / nop_epochs:.1%} of NopPruner's epochs, {best - nop_best:+.2f} "
            f"points: goal 1 (<= 50%, >= -0.5) {'met' if half else 'NOT met'}; "
            f"vs MedianPruner ({med_epochs:.0f} epochs, {med_best:.2f}): "
            f"goal 2 (fewer epochs, best within 0.5) {'met' if median else 'NOT met'}."
        )
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="3 seeds x 30 trials x 10 epochs")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--zoo", type=int, default=24, help="trials in the pretraining zoo")
    parser.add_argument("--top-k-epochs", type=int, default=3)
    parser.add_argument("--top-share", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--first-step", type=int, default=1, help="first epoch index kept in the pretraining zoo"
    )
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds are first-seed ... first-seed+seeds-1"
    )
    parser.add_argument(
        "--no-online", action="store_true", help="leave out the online SNEPruner (the slow row)"
    )
    parser.add_argument(
        "--regressor", default=None, help="load this saved SNERegressor instead of pretraining"
    )
    parser.add_argument(
        "--save-regressor", default=None, help="save the pretrained SNERegressor here"
    )
    parser.add_argument("--out", default="benchmarks/results/pruners.md")
    args = parser.parse_args(argv)
    if args.small:
        args.seeds, args.trials, args.epochs, args.zoo = 3, 30, 10, 16
    args.seeds_list = list(range(args.first_seed, args.first_seed + args.seeds))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = ex.load_data()
    regressor, zoo_s = pretrain(data, args)
    results: dict[str, list[Run]] = {}
    for name, make in pruners(args.epochs, regressor).items():
        if args.no_online and name == "SNEPruner (online)":
            continue
        results[name] = [run_pruner(name, make, data, args, seed) for seed in args.seeds_list]
        print(f"{name}: done", file=sys.stderr, flush=True)
    results[f"top-{args.top_share:.0%} after {args.top_k_epochs} epochs"] = [
        run_top_k(data, args, seed) for seed in args.seeds_list
    ]
    text = table(results, args, zoo_s)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        f"# Pruners on the digits CNN search\n\n`{' '.join(sys.argv)}`\n\n{text}"
    )


if __name__ == "__main__":
    main()
