"""``sne inspect MODEL``: print the layers the readers find in a model file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sne_plugin.cli import HelpFormatter

__all__ = ["STRICT_FLAGS", "add_epoch_option", "add_strict_option", "register"]

# What the readers' messages call `strict=False` and `epoch=N` are `--no-strict` and
# `--epoch N` on the command line.
STRICT_FLAGS = ((r"\bstrict=False\b", "--no-strict"), (r"\bepoch=", "--epoch "))

_DESCRIPTION = """\
Read a model file and list its layers as SNE sees them: kind, name, weight and bias
shapes, parameter count; then the total, where it was read from, and whether it is a plain
chain (an MLP or a CNN without skip connections).

Reads .onnx, torch files (.pt/.pth/.ckpt/.bin: a state dict, a checkpoint holding one, or a
whole pickled module) and .npz archives of named arrays. A zoo's weights/NNNNNN.npz holds
several saved epochs of one model: the last is read unless --epoch names another.

The layers are listed as stored; --canonical lists them as `sne fit`, `sne predict` and the
estimators encode them: BatchNorm folded into the dense or conv layer it follows, all-zero
biases of dense, conv and attention layers dropped (so a module and its ONNX export agree)."""


def add_strict_option(parser: argparse.ArgumentParser) -> None:
    """``--no-strict``: skip unreadable parameters with a warning instead of failing."""
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="skip parameters that cannot be read (with a warning) instead of failing",
    )
    parser.set_defaults(keyword_flags=STRICT_FLAGS)


def add_epoch_option(parser: argparse.ArgumentParser) -> None:
    """``--epoch N``: which saved epoch of a zoo's weights to read."""
    parser.add_argument(
        "--epoch",
        type=int,
        default=None,
        help="for a zoo's weights (.npz with several saved epochs, or a zoo folder): the "
        "epoch to read; default: the last saved (the final weights)",
    )


def register(subparsers: Any, help_text: str) -> None:
    """Add the ``inspect`` sub-command to the ``sne`` parser."""
    parser = subparsers.add_parser(
        "inspect", help=help_text, description=_DESCRIPTION, formatter_class=HelpFormatter
    )
    parser.add_argument("model", help="path to the model file")
    add_strict_option(parser)
    add_epoch_option(parser)
    parser.add_argument(
        "--canonical",
        action="store_true",
        help="list the canonical form SNE encodes (BatchNorm folded, zero biases dropped)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sne_plugin.commands._networks import read_file
    from sne_plugin.readers.cli import format_table

    net = read_file(
        Path(args.model), strict=args.strict, epoch=args.epoch, canonical=args.canonical
    )
    print(format_table(net))
    return 0
