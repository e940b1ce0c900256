"""The ``sne`` command: one sub-command per job, each registered by its own module.

Only the module of the sub-command being run is imported, so ``sne --help`` and
``sne --version`` never import torch; every other sub-command appears in the listing by its
one-line help alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence

from sne_plugin.errors import SNEError

__all__ = ["COMMANDS", "HelpFormatter", "build_parser", "cli_wording", "main"]

# name -> (module defining `register(subparsers, help)`, one-line help). Listed in this order.
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("sne_plugin.commands.inspect", "list the layers read from a model file"),
    "fit": ("sne_plugin.commands.fit", "fit SNE on networks and their targets, save the model"),
    "predict": ("sne_plugin.commands.predict", "predict with a saved model, one line per network"),
    "zoo": ("sne_plugin.research.zoo.cli", "build and summarise zoos of small trained networks"),
    "bench": ("sne_plugin.research.bench.cli", "run the generalization-prediction benchmark"),
    "demo": ("sne_plugin.research.demo", "a guided tour: zoo, SNE against StatNN, pruned search"),
}

_EPILOG = """\
examples:
  sne demo --quick                      the whole chain in about a minute
  sne inspect model.onnx                the layers SNE reads from a model file
  sne zoo build runs/zoo --n-models 64  train a small zoo of networks
  sne fit runs/zoo -o sne_model         fit SNE on it (targets from the zoo)
  sne predict sne_model a.pt b.onnx     predicted generalization of your networks

`sne COMMAND --help` describes each command."""


_NO_DEFAULT = (None, False, argparse.SUPPRESS)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions' line breaks, and ends each option's help with its default, unless
    the help already says it or there is none to show (``None``, a switch).

    Examples
    --------
    >>> parser = argparse.ArgumentParser(
    ...     prog="sne demo", formatter_class=lambda prog: HelpFormatter(prog, width=70))
    >>> _ = parser.add_argument("--epochs", type=int, default=5, help="training epochs")
    >>> _ = parser.add_argument("--quick", action="store_true", help="a smaller run")
    >>> print(parser.format_help())
    usage: sne demo [-h] [--epochs EPOCHS] [--quick]
    <BLANKLINE>
    options:
      -h, --help       show this help message and exit
      --epochs EPOCHS  training epochs (default: 5)
      --quick          a smaller run
    <BLANKLINE>
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if not text or "default" in text or action.nargs == 0:  # a switch: no value to show
            return text
        if any(default is v for v in _NO_DEFAULT):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


def _version() -> str:
    from sne_plugin import __version__

    return f"sne-plugin {__version__}"


def _command_in(argv: Sequence[str]) -> str | None:
    # The top-level parser has no option that takes a value, so the first word is the command.
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``sne`` parser, with the full sub-parser of ``command`` (the others: help only)."""
    parser = argparse.ArgumentParser(
        prog="sne",
        description="Predict a trained network's generalization from its weights (SNE).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).register(subparsers, help_text)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def cli_wording(message: str, flags: Sequence[tuple[str, str]]) -> str:
    """``message`` with the Python keywords it names replaced by the command's flags.

    >>> cli_wording("pass strict=False to skip them", [(r"\\bstrict=False\\b", "--no-strict")])
    'pass --no-strict to skip them'
    """
    for pattern, flag in flags:
        message = re.sub(pattern, flag, message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sne`` with ``argv`` (default: the process's arguments); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(_command_in(argv)).parse_args(argv)
    except BrokenPipeError:  # --help into a closed pipe, stdout unbuffered
        return _closed_pipe()
    except SystemExit:  # --help, --version, a usage error: argparse exits after printing
        try:
            sys.stdout.flush()  # buffered output meets a closed pipe here, not at exit
        except BrokenPipeError:
            return _closed_pipe()
        raise
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except SNEError as exc:
        message = cli_wording(str(exc), getattr(args, "keyword_flags", ()))
        print(f"sne: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        print("sne: interrupted", file=sys.stderr)
        return 130
    return code


def _closed_pipe() -> int:
    # The reader (`| head`) has gone: point stdout at /dev/null so that the interpreter's own
    # flush at exit does not fail again, and exit as a process killed by SIGPIPE would.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
