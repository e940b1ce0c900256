"""``sne inspect MODEL``: print the layers the readers find in a model file."""

from __future__ import annotations

import argparse
from typing import Any

from sne_plugin.weights import NetworkWeights

__all__ = ["format_table", "register"]

_HEADER = ("#", "kind", "name", "weight", "bias", "params")


def register(subparsers: Any) -> None:
    """Add the ``inspect`` sub-command to the ``sne`` parser."""
    parser = subparsers.add_parser(
        "inspect",
        help="list the layers read from a model file",
        description="Read a model file (.onnx, .pt/.pth/.ckpt/.bin, .npz) and list its layers.",
    )
    parser.add_argument("model", help="path to the model file")
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="skip parameters that cannot be read (with a warning) instead of failing",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sne_plugin.readers import read_weights

    net = read_weights(args.model, strict=args.strict)
    print(format_table(net))
    return 0


def _shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "x".join(str(n) for n in shape)


def format_table(net: NetworkWeights) -> str:
    """An aligned table of the layers of ``net``, a total line, the source and ``is_chain``.

    >>> import torch
    >>> net = NetworkWeights.from_pairs([(torch.zeros(4, 2), torch.zeros(4))], source="demo")
    >>> print(format_table(net))
    #  kind   name    weight  bias  params
    0  dense  layer0  4x2     4         12
    total: 1 layers, 12 parameters
    source: demo
    is_chain: True
    """
    rows = [_HEADER]
    for i, spec in enumerate(net.spec.layers):
        shapes = (_shape(spec.weight_shape), _shape(spec.bias_shape))
        rows.append((str(i), spec.kind.value, spec.name, *shapes, f"{spec.num_params:,}"))
    widths = [max(len(row[col]) for row in rows) for col in range(len(_HEADER))]
    lines = [_format_row(row, widths) for row in rows]
    lines.append(f"total: {len(net)} layers, {net.num_params:,} parameters")
    lines.append(f"source: {net.source}")
    lines.append(f"is_chain: {net.is_chain}")
    return "\n".join(lines)


def _format_row(row: tuple[str, ...], widths: list[int]) -> str:
    cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths)]
    return "  ".join([*cells, row[-1].rjust(widths[-1])])
