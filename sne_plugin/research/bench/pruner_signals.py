"""Which signal ranks trials of the pruner benchmark's search best, step by step?

    python -m sne_plugin.research.bench.pruner_signals --zoo 16 32 --loss bce mse

Trains ``--heldout`` random configurations of the search of ``sne_plugin.research.digits_search``
to the end (seed ``--heldout-seed``, apart from the benchmark's pretraining zoo and its
searches), then reports Kendall's tau between each signal at step k and the final
validation accuracy: the validation accuracy so far (the learning curve, what Optuna's own
pruners rank by) and the predictions of SNERegressors pretrained as in
``sne_plugin/research/bench/pruners.py`` on zoos of ``--zoo`` trials with each ``--loss``. A pruner that
decides at step k cannot keep the best trials more often than its signal ranks them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import optuna
import torch
from scipy.stats import kendalltau, rankdata

from sne_plugin.research.bench import pruners as pb


def taus(signal: np.ndarray, finals: np.ndarray) -> float:
    """Kendall's tau; a diverged trial's missing prediction ranks last."""
    return float(kendalltau(np.nan_to_num(signal, nan=-np.inf), finals).statistic)


def blend(predicted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The mean of the prediction's rank and the value's rank; a missing prediction ranks last."""
    return rankdata(np.nan_to_num(predicted, nan=-np.inf)) + rankdata(values)


def predictions(model: object, trials: list[pb.RandomTrial], step: int) -> np.ndarray:
    out = np.full(len(trials), np.nan)
    ok = [i for i, t in enumerate(trials) if t.weights[step].is_finite()]
    out[ok] = model.predict([trials[i].weights[step] for i in ok])  # type: ignore[attr-defined]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heldout", type=int, default=40)
    parser.add_argument("--heldout-seed", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--zoo", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--loss", nargs="+", default=["bce", "mse"], choices=["bce", "mse"])
    parser.add_argument("--first-step", type=int, default=1)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = pb.ex.load_data()
    held = pb.random_trials(data, args.heldout, args.epochs, args.heldout_seed)
    finals = np.array([t.final for t in held])
    zoo = pb.random_trials(data, max(args.zoo), args.epochs, pb.ZOO_SEED)
    head = " | ".join(f"step {k}" for k in args.steps)
    lines = [
        f"{args.heldout} held-out random configurations (seed {args.heldout_seed}), "
        f"{args.epochs} epochs; Kendall tau against the final validation accuracy.",
        "",
        f"| signal | {head} |",
        "|---|" + "---|" * len(args.steps),
    ]
    curves = np.array([t.values for t in held])
    curve = [taus(curves[:, k], finals) for k in args.steps]
    lines.append("| validation accuracy so far | " + " | ".join(f"{v:.3f}" for v in curve) + " |")
    for n in args.zoo:
        for loss in args.loss:
            model = pb.fit_pretrained(zoo[:n], args.first_step, loss)
            preds = {k: predictions(model, held, k) for k in args.steps}
            row = [taus(preds[k], finals) for k in args.steps]
            lines.append(
                f"| SNE pretrained on {n} trials, loss={loss} | "
                + " | ".join(f"{v:.3f}" for v in row)
                + " |"
            )
            # What SNEPruner ranks by at its default learning_curve=0.5.
            mixed = [taus(blend(preds[k], curves[:, k]), finals) for k in args.steps]
            lines.append(
                f"| mean rank of the curve and SNE on {n} trials, loss={loss} | "
                + " | ".join(f"{v:.3f}" for v in mixed)
                + " |"
            )
            print("\n".join(lines[-2:]), flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
