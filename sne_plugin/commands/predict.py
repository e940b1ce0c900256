"""``sne predict MODEL NETWORKS...``: one prediction per network, as text or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sne_plugin.cli import HelpFormatter
from sne_plugin.commands.inspect import add_epoch_option, add_strict_option

__all__ = ["register"]

_DESCRIPTION = """\
Predict with a model saved by `sne fit` (or SNERegressor.save): one line per network, its
name and its predicted value (on the scale of the targets it was fitted on), tab-separated;
--json prints a list of {"network": ..., "prediction": ...} objects instead.

NETWORKS are model files (.pt/.pth/.ckpt/.bin, .onnx, .npz), folders of them, or zoo folders.

examples:
  sne predict sne_model my_net.onnx checkpoints/
  sne predict sne_model runs/zoo --json | python -m json.tool"""


def register(subparsers: Any, help_text: str) -> None:
    """Add the ``predict`` sub-command to the ``sne`` parser."""
    p = subparsers.add_parser(
        "predict", help=help_text, description=_DESCRIPTION, formatter_class=HelpFormatter
    )
    p.add_argument("model", metavar="MODEL", help="a model saved by `sne fit`")
    p.add_argument("networks", nargs="+", metavar="NETWORK", help="model files or folders")
    p.add_argument("--json", action="store_true", help="print JSON instead of lines")
    add_strict_option(p)
    add_epoch_option(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sne_plugin.commands._networks import read_networks
    from sne_plugin.regressor import SNERegressor

    reg = SNERegressor.load(args.model)
    nets = read_networks(args.networks, strict=args.strict, epoch=args.epoch)
    predictions = [float(v) for v in reg.predict(nets.weights)]
    if args.json:
        rows = [{"network": n, "prediction": v} for n, v in zip(nets.names, predictions)]
        print(json.dumps(rows, indent=2))
    else:
        for name, value in zip(nets.names, predictions):
            print(f"{name}\t{value:.6g}")
    return 0
