"""The ``sne`` command: one sub-command per job, each registered by its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sne_plugin.errors import SNEError

# Each module defines `register(subparsers)` and sets `func` on its parser.
_COMMAND_MODULES = (
    "sne_plugin.readers.cli",
    "sne_plugin.research.zoo.cli",
    "sne_plugin.research.bench.cli",
    "sne_plugin.research.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sne", description="Set-based Neural network Encoder tools."
    )
    from sne_plugin import __version__

    parser.add_argument("--version", action="version", version=f"sne-plugin {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a sub-command not built in this version
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SNEError as exc:
        print(f"sne: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
