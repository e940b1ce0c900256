"""``sne demo``: a few minutes on a CPU from a zoo to a pruned hyperparameter search.

1. Build (or reuse from the benchmark cache) a small zoo of ``small_cnn`` on digits.
2. Fit SNE and StatNN on 80% of it; print both Kendall taus on the other 20%.
3. If optuna imports: run a short digits search (:mod:`sne_plugin.research.digits_search`)
   twice, once with its trials pruned by :class:`SNEPruner` at its defaults (the shipped
   pretrained predictor) and once unpruned, and print the epochs saved and the best
   accuracy of each.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["main", "register", "run_demo"]

_DESCRIPTION = """\
A guided tour of sne-plugin, each step explained as it runs:

  1. build a zoo of small CNNs trained on scikit-learn's digits (cached under --cache, so
     the next run reuses it), or reuse it;
  2. fit SNE and StatNN (a baseline on weight statistics) on 80% of the zoo and score how
     well each ranks the other 20% by test accuracy (Kendall's tau);
  3. if Optuna is installed: run a short search over CNNs twice, pruned by SNEPruner and
     unpruned, and compare the epochs trained and the best accuracy found.

Several minutes on 2 CPU cores, most of them fitting SNE (a progress bar shows it); --quick
takes about a minute once its zoo is cached."""

_TAU = (
    "Kendall's tau: how well predicted accuracies order the held-out networks "
    "(1 = the true order, 0 = no better than random, -1 = reversed)."
)


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


def register(subparsers: Any, help_text: str) -> None:
    """Add ``sne demo`` to the ``sne`` command."""
    from sne_plugin.cli import HelpFormatter

    p = subparsers.add_parser(
        "demo", help=help_text, description=_DESCRIPTION, formatter_class=HelpFormatter
    )
    p.add_argument(
        "--n-models", type=int, default=None, help="zoo size (default: 160; 32 with --quick)"
    )
    p.add_argument(
        "--quick", action="store_true", help="a tiny version of every step (about a minute)"
    )
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
    import torch

    torch.set_num_threads(1)
    out = _zoo_step(config)
    out.update(_optuna_step(config))
    return out


def _say(text: str = "") -> None:
    print(text, flush=True)  # before a progress bar on stderr starts


def _zoo_step(config: DemoConfig) -> dict[str, Any]:
    from sne_plugin import SNERegressor
    from sne_plugin.research.baselines import StatNNRegressor
    from sne_plugin.research.bench.tasks import ZooCache, ZooSpec, split_indices

    cache = ZooCache(config.cache, workers=1 if config.quick else 2)
    spec = ZooSpec("small_cnn", "digits", config.n_models)
    _say(
        f"Step 1. A zoo of {config.n_models} small CNNs trained on digits, each with its own "
        "hyperparameters;"
    )
    _say(f"        kept in {cache.root / spec.folder()} (reused on the next run).")
    part = cache.part(spec, "final")
    tr, te = split_indices(len(part.y), 0)
    X_tr, X_te = [part.X[i] for i in tr], [part.X[i] for i in te]
    _say(f"        test accuracies from {part.y.min():.3f} to {part.y.max():.3f}.")
    _say()
    _say(
        f"Step 2. Predict each network's test accuracy from its weights alone: fit on "
        f"{len(tr)} networks, score on the other {len(te)}."
    )
    _say(f"        {_TAU}")
    epochs = config.sne_epochs()
    extra: dict[str, Any] = {} if epochs is None else {"epochs": epochs}
    taus = {}
    for name, est in (
        ("SNE", SNERegressor(random_state=0, device="cpu", verbose=True, **extra)),
        ("StatNN", StatNNRegressor(random_state=0)),
    ):
        start = time.perf_counter()
        est.fit(X_tr, part.y[tr])
        predicted = est.predict(X_te)
        taus[name] = _tau(part.y[te], predicted)
        sys.stderr.flush()
        _say(
            f"{name:7s} {_tau_text(taus[name])} on {len(te)} held-out networks "
            f"(fit {time.perf_counter() - start:.1f} s)"
        )
        if np.isnan(taus[name]):
            _say(f"        {_why_no_tau(predicted)}")
    _say(
        "        StatNN fits a gradient-boosted model to simple statistics of each layer's "
        "weights: the bar to beat."
    )
    return {"tau": taus}


def _tau(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sne_plugin.research.bench.metrics import kendall_tau

    return kendall_tau(truth, predicted)


def _tau_text(tau: float) -> str:
    return "no Kendall tau" if np.isnan(tau) else f"Kendall tau {tau:.3f}"


def _why_no_tau(predicted: np.ndarray) -> str:
    if np.ptp(predicted) == 0:
        return (
            f"(it predicted one value, {predicted[0]:.3f}, for every network, which ranks "
            "none: too few networks to learn from; a larger zoo, without --quick, fixes it)"
        )
    return "(the held-out networks all have the same accuracy: there is no order to match)"


def _optuna_step(config: DemoConfig) -> dict[str, Any]:
    try:
        import optuna

        from sne_plugin.research import digits_search as search
    except ImportError as exc:
        _say(f"Step 3 (the pruned Optuna search) skipped: {exc}")
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    total = config.trials * config.epochs
    _say()
    _say(
        f"Step 3. An Optuna search over CNNs on digits ({config.trials} trials of up to "
        f"{config.epochs} epochs), run twice:"
    )
    _say(
        "        with SNEPruner at its defaults (the predictor shipped in the package, no "
        "pretraining here), which stops a trial whose curve ranks in the bottom 80% of its "
        "peers (NaN weights at once); then unpruned, for comparison."
    )
    pruned, pruned_ledger = _search(optuna, search, config, prune=True)
    plain, _ = _search(optuna, search, config, prune=False)
    n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in pruned.trials)
    saved = total - pruned_ledger.epochs
    _say(
        f"with SNEPruner: {n_pruned} of {config.trials} trials stopped early; "
        f"{pruned_ledger.epochs} of {total} epochs trained ({saved / total:.0%} saved); "
        f"best accuracy {pruned.best_value:.3f}"
    )
    _say(
        f"unpruned:       every trial trained to the end; {total} epochs; "
        f"best accuracy {plain.best_value:.3f}"
    )
    lost = round((plain.best_value - pruned.best_value) * 100, 1)
    change = (
        "found the same best accuracy"
        if lost == 0
        else f"{'lost' if lost > 0 else 'gained'} {abs(lost):.1f} accuracy points"
    )
    _say(
        f"        pruning {change} with {saved / total:.0%} fewer epochs "
        "(accuracy on 500 held-out digits)."
    )
    return {
        "pruned": n_pruned,
        "epochs_saved": saved,
        "best_pruned": pruned.best_value,
        "best_unpruned": plain.best_value,
    }


def _search(optuna: Any, search: Any, config: DemoConfig, *, prune: bool) -> tuple[Any, Any]:
    pruner = (
        search.default_pruner(
            n_min_trials=4 if config.quick else 8, refit_every=4 if config.quick else 8
        )
        if prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.TPESampler(seed=0)
    )
    ledger = search.Ledger()
    objective = search.make_objective(
        search.load_data(), config.epochs, use_sne=prune, ledger=ledger
    )
    _say(f"        {'pruned by SNEPruner' if prune else 'unpruned'}:")
    study.optimize(objective, n_trials=config.trials, show_progress_bar=True)
    sys.stderr.flush()
    return study, ledger
