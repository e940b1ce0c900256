"""``sne zoo build PATH ...`` and ``sne zoo info PATH``."""

from __future__ import annotations

import argparse
from typing import Any

from sne_plugin.research.util import text_histogram

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``zoo`` command (``build``, ``info``) to the ``sne`` parser."""
    zoo = subparsers.add_parser("zoo", help="build and inspect model zoos")
    sub = zoo.add_subparsers(dest="zoo_command", required=True)
    b = sub.add_parser("build", help="train a zoo of small networks (resumes an existing PATH)")
    b.add_argument("path")
    b.add_argument("--arch", default="small_cnn")
    b.add_argument("--dataset", default="digits")
    b.add_argument("--n-models", type=int, default=256)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--epochs", default="0,1,2,4", help="epochs to save weights at, e.g. 0,1,2,4")
    b.add_argument("--max-epochs", type=int, default=None)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--root", default=None, help="folder of torchvision-format files (mnist ...)")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=_build)
    i = sub.add_parser("info", help="summarise a zoo folder")
    i.add_argument("path")
    i.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from sne_plugin.research.zoo.build import build_zoo

    epochs = tuple(int(e) for e in args.epochs.split(",") if e.strip())
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
