"""``sne fit NETWORKS... -o MODEL``: fit SNE on networks and their targets, save the model."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from sne_plugin.cli import HelpFormatter
from sne_plugin.commands.inspect import add_epoch_option, add_strict_option
from sne_plugin.errors import SNEError

__all__ = ["ESTIMATOR_OPTIONS", "register"]

_DESCRIPTION = """\
Fit an SNERegressor on networks and the value to predict for each (usually the test
accuracy reached after training), and save it for `sne predict` and SNEPruner("MODEL").

NETWORKS are model files (.pt/.pth/.ckpt/.bin, .onnx, .npz), folders of them, or zoo folders
(`sne zoo build`), which bring their own targets (--target-key). Other networks need
--targets: a file of one number per line in the order of the networks, or a CSV whose first
column names each network (its path or file name) and whose last column (or --target-column)
holds its target.

examples:
  sne fit runs/zoo -o sne_model
  sne fit nets/*.onnx --targets accuracies.csv -o sne_model --epochs 40"""

# SNERegressor's own defaults for the options offered here (a test keeps them equal), so
# that `sne fit --help` shows them without importing torch.
ESTIMATOR_OPTIONS: dict[str, tuple[type, Any, str]] = {
    "epochs": (int, 40, "training epochs at most (early stopping may end sooner)"),
    "width": (int, 16, "embedding width of the encoder"),
    "heads": (int, 2, "attention heads per set block"),
    "chunk_size": (int, 16, "weights per chunk (set element)"),
    "batch_size": (int, 32, "networks per training batch"),
    "lr": (float, 2e-3, "learning rate (AdamW)"),
    "patience": (int, 10, "epochs without a better validation tau before stopping"),
}


def register(subparsers: Any, help_text: str) -> None:
    """Add the ``fit`` sub-command to the ``sne`` parser."""
    p = subparsers.add_parser(
        "fit", help=help_text, description=_DESCRIPTION, formatter_class=HelpFormatter
    )
    p.add_argument("networks", nargs="+", metavar="NETWORK", help="model files or folders")
    p.add_argument("-o", "--out", required=True, metavar="MODEL", help="where to save the model")
    p.add_argument("--targets", metavar="FILE", help="targets file (needed unless zoo folders)")
    p.add_argument("--target-column", metavar="NAME", help="CSV column of the targets")
    p.add_argument(
        "--target-key", default="test_acc", help="zoo folders: the record field to predict"
    )
    for name, (kind, default, text) in ESTIMATOR_OPTIONS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text)
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the fit")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_strict_option(p)
    add_epoch_option(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sne_plugin.commands._networks import read_networks, read_targets
    from sne_plugin.regressor import SNERegressor

    nets = read_networks(
        args.networks, strict=args.strict, epoch=args.epoch, target_key=args.target_key
    )
    if args.targets:
        y = read_targets(args.targets, nets.names, args.target_column)
    elif nets.zoo_targets is not None:
        y = np.asarray(nets.zoo_targets, dtype=np.float64)
    else:
        raise SNEError(
            "expected --targets FILE (one target per network): only zoo folders bring their "
            f"own, and {len(nets.names)} networks were read from files"
        )
    if len(nets.weights) < 2:
        raise SNEError(f"expected at least 2 networks to fit on, got {len(nets.weights)}")
    options = {name: getattr(args, name) for name in ESTIMATOR_OPTIONS}
    reg = SNERegressor(
        **options, device=args.device, random_state=args.seed, verbose=not args.quiet
    )
    start = time.perf_counter()
    reg.fit(nets.weights, y)
    reg.save(args.out)
    if not args.quiet:
        print(
            f"fitted on {len(nets.weights)} networks in {time.perf_counter() - start:.1f} s "
            f"({reg.n_epochs_} epochs); saved to {args.out}",
            file=sys.stderr,
        )
    return 0
