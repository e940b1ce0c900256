"""What SNEPruner's hooks cost inside the example's search, against one epoch of training.

    python -m sne_plugin.research.bench.hooks --trials 20 --epochs 10

Runs the digits search of ``examples/optuna_pruning.py`` (:mod:`sne_plugin.research.digits_search`,
TPE) once per pruner and prints, from its :class:`~sne_plugin.research.digits_search.Ledger`:
seconds per training epoch, seconds per hook call (``report_weights`` + ``should_prune``),
and their ratio. The goal: hooks at most 10% of one epoch. Both are timed in the same process
and run, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import sys
import time

import optuna
import torch

from sne_plugin.research import digits_search as search


def measure(name: str, pruner: optuna.pruners.BasePruner, trials: int, epochs: int) -> str:
    ledger = search.Ledger()
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.TPESampler(seed=0)
    )
    objective = search.make_objective(search.load_data(), epochs, ledger=ledger)
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    wall = time.perf_counter() - start
    epoch_s = ledger.train_s / max(ledger.epochs, 1)
    hook_s = ledger.hook_s / max(ledger.hook_calls, 1)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return (
        f"| {name} | {ledger.epochs} | {pruned} | {1000 * epoch_s:.0f} | {1000 * hook_s:.1f} "
        f"| {100 * hook_s / epoch_s:.1f}% | {wall:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sne_plugin.research.bench.hooks",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(
        "| pruner | epochs trained | trials pruned | ms per epoch | ms per hook call "
        "| hook / epoch | wall s |\n|---|---|---|---|---|---|---|"
    )
    for name, pruner in [
        ("SNEPruner() (pretrained, fine-tuned)", search.default_pruner()),
        ("SNEPruner(online=False) (zero-shot)", search.default_pruner(online=False)),
        ("MedianPruner (no SNE hooks)", optuna.pruners.MedianPruner()),
    ]:
        print(measure(name, pruner, args.trials, args.epochs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
