"""``sne zoo build PATH ...`` and ``sne zoo info PATH``."""

from __future__ import annotations

import argparse
from typing import Any

from sne_plugin.errors import SNEError
from sne_plugin.research.util import text_histogram

__all__ = ["register"]


_BUILD_DESCRIPTION = """\
Train a zoo of small networks offline: each model draws its hyperparameters (initialisation,
optimizer, learning rate, L2, dropout, activation, train fraction, batch size, training
length) from the zoo's seed, trains on the dataset, and has its weights saved at --epochs and
at its final epoch, with its test accuracy. Resumable: run the same command again after an
interruption and it continues where it stopped.

Python: load_zoo(PATH).weights("final") and .targets() (sne_plugin.research.zoo)."""

# Python keywords in the builders' messages, as this command's flags.
_FLAGS = ((r"\broot= ?", "--root "), (r"\bmax_epochs\b", "--max-epochs"))


def register(subparsers: Any, help_text: str) -> None:
    """Add the ``zoo`` command (``build``, ``info``) to the ``sne`` parser."""
    from sne_plugin.cli import HelpFormatter
    from sne_plugin.research.zoo.architectures import ARCHITECTURES
    from sne_plugin.research.zoo.datasets import DATASETS

    zoo = subparsers.add_parser("zoo", help=help_text, description=help_text)
    sub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    b = sub.add_parser(
        "build",
        help="train a zoo of small networks (resumes an existing PATH)",
        description=_BUILD_DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    b.add_argument("path", help="the zoo folder (created, or resumed when it exists)")
    b.add_argument(
        "--arch",
        default="small_cnn",
        choices=list(ARCHITECTURES),
        metavar="ARCH",
        help=f"architecture, one of: {', '.join(ARCHITECTURES)}",
    )
    b.add_argument(
        "--dataset",
        default="digits",
        choices=list(DATASETS),
        metavar="NAME",
        help=f"training data, one of: {', '.join(DATASETS)} (the last three are read from "
        "--root, never downloaded)",
    )
    b.add_argument("--n-models", type=int, default=256, help="how many networks")
    b.add_argument("--workers", type=int, default=2, help="training processes (1: in this one)")
    b.add_argument("--epochs", default="0,1,2,4", help="comma-separated epochs to save weights at")
    b.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="longest training; each model trains between max(--epochs) and this "
        "(default: twice max(--epochs))",
    )
    b.add_argument("--seed", type=int, default=0, help="seed of the whole zoo")
    b.add_argument(
        "--root", default=None, help="folder of torchvision-format files (mnist, cifar10 ...)"
    )
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build, keyword_flags=_FLAGS)
    i = sub.add_parser(
        "info",
        help="summarise a zoo folder",
        description="A zoo's size, architecture, dataset, saved epochs and a histogram of "
        "its models' final test accuracy.",
        formatter_class=HelpFormatter,
    )
    i.add_argument("path", help="the zoo folder")
    i.set_defaults(func=_info)


def _epochs(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(e) for e in text.split(",") if e.strip())
    except ValueError:
        raise SNEError(
            f"expected --epochs as comma-separated integers (0,1,2,4), got {text!r}"
        ) from None


def _build(args: argparse.Namespace) -> int:
    from sne_plugin.research.zoo.build import build_zoo

    epochs = _epochs(args.epochs)
    zoo = build_zoo(
        args.path,
        arch=args.arch,
        dataset=args.dataset,
        n_models=args.n_models,
        epochs=epochs,
        seed=args.seed,
        workers=args.workers,
        progress=not args.quiet,
        max_epochs=args.max_epochs,
        dataset_args={"root": args.root} if args.root else None,
    )
    print(f"{zoo.path}: {len(zoo)} models")
    return 0


def _info(args: argparse.Namespace) -> int:
    from sne_plugin.research.zoo.store import load_zoo

    zoo = load_zoo(args.path)
    m = zoo.manifest
    print(
        f"zoo {zoo.path}: {len(zoo)}/{m['n_models']} models, arch {m['arch']} "
        f"({m['architecture']['num_params']} params), dataset {m['dataset']}, seed {m['seed']}"
    )
    print(f"saved epochs {m['epochs']} + final (epochs {m['min_epochs']}-{m['max_epochs']})")
    if len(zoo):
        print("final test accuracy:\n" + text_histogram(zoo.targets()))
    return 0
