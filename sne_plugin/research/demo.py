"""``sne demo``: a few minutes on a CPU from a zoo to a pruned hyperparameter search.

1. Build (or reuse from the benchmark cache) a small zoo of ``small_cnn`` on digits.
2. Fit SNE and StatNN on 80% of it; print both Kendall taus on the other 20%.
3. If optuna imports: run a short digits search (:mod:`sne_plugin.research.digits_search`)
   whose trials are pruned by :class:`SNEPruner` (online: it learns from the study's
   finished trials), and print how many trials were pruned and epochs saved.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import torch

from sne_plugin.research.bench.metrics import kendall_tau
from sne_plugin.research.bench.tasks import ZooCache, ZooSpec, split_indices

__all__ = ["main", "register", "run_demo"]


@dataclass
class DemoConfig:
    """Sizes of the demo (``quick``: seconds-scale versions of each step)."""

    n_models: int = 160
    quick: bool = False
    cache: str = "runs/bench"
    trials: int = 24
    epochs: int = 6

    def sne_epochs(self) -> int | None:
        return 3 if self.quick else None


def register(subparsers: Any) -> None:
    """Add ``sne demo`` to the ``sne`` command."""
    p = subparsers.add_parser(
        "demo", help="zoo -> SNE vs StatNN -> pruned Optuna search", description=__doc__
    )
    p.add_argument("--n-models", type=int, default=None, help="zoo size (default 160, quick 32)")
    p.add_argument("--quick", action="store_true", help="tiny version (about a minute)")
    p.add_argument("--cache", default="runs/bench", help="folder of cached zoos")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Entry point of ``sne demo``."""
    n = args.n_models or (32 if args.quick else 160)
    trials, epochs = (8, 3) if args.quick else (24, 6)
    run_demo(DemoConfig(n, args.quick, args.cache, trials, epochs))
    return 0


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run the demo; returns what it printed as numbers."""
    torch.set_num_threads(1)
    out = _zoo_step(config)
    out.update(_optuna_step(config))
    return out


def _zoo_step(config: DemoConfig) -> dict[str, Any]:
    from sne_plugin import SNERegressor
    from sne_plugin.research.baselines import StatNNRegressor

    cache = ZooCache(config.cache, workers=1 if config.quick else 2)
    part = cache.part(ZooSpec("small_cnn", "digits", config.n_models), "final")
    tr, te = split_indices(len(part.y), 0)
    X_tr, X_te = [part.X[i] for i in tr], [part.X[i] for i in te]
    epochs = config.sne_epochs()
    extra: dict[str, Any] = {} if epochs is None else {"epochs": epochs}
    taus = {}
    for name, est in (
        ("SNE", SNERegressor(random_state=0, device="cpu", **extra)),
        ("StatNN", StatNNRegressor(random_state=0)),
    ):
        start = time.perf_counter()
        est.fit(X_tr, part.y[tr])
        taus[name] = kendall_tau(part.y[te], est.predict(X_te))
        print(
            f"{name:7s} Kendall tau {taus[name]:.3f} on {len(te)} held-out networks "
            f"(fit {time.perf_counter() - start:.1f} s)"
        )
    return {"tau": taus}


def _optuna_step(config: DemoConfig) -> dict[str, Any]:
    try:
        import optuna

        from sne_plugin.research import digits_search as search
    except ImportError as exc:
        print(f"Optuna step skipped: {exc}")
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = search.default_pruner(
        n_min_trials=4 if config.quick else 8, refit_every=4 if config.quick else 8
    )
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.TPESampler(seed=0)
    )
    ledger = search.Ledger()
    objective = search.make_objective(search.load_data(), config.epochs, ledger=ledger)
    study.optimize(objective, n_trials=config.trials)
    states = [t.state.name for t in study.trials]
    total = config.trials * config.epochs
    print(
        f"Optuna with SNEPruner: {states.count('PRUNED')} of {config.trials} trials pruned, "
        f"{total - ledger.epochs} of {total} epochs saved; best accuracy "
        f"{study.best_value:.3f}"
    )
    return {"pruned": states.count("PRUNED"), "epochs_saved": total - ledger.epochs}
