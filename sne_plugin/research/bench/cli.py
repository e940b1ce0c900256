"""``sne bench``: run the benchmark and regenerate the marker block of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from sne_plugin.errors import SNEError

__all__ = ["main", "register"]


_DESCRIPTION = """\
Fit every method on the tasks of a profile and score how well each ranks held-out networks
by their test accuracy (Kendall's tau: 1 = the same order as the truth, 0 = no better than
random); the report replaces the marked block of --out and is printed. Zoos are built on
first use and cached under --cache.

profiles (one of):
  --smoke   tiny zoos, seconds (tests)
  --small   under 15 min on 2 CPU cores (the default)
  --full    larger zoos, more tasks, SNE at its default epochs (hours)"""


def register(subparsers: Any, help_text: str) -> None:
    """Add ``sne bench`` to the ``sne`` command."""
    from sne_plugin.cli import HelpFormatter
    from sne_plugin.research.bench.methods import METHODS
    from sne_plugin.research.bench.tasks import PROFILES

    p = subparsers.add_parser(
        "bench", help=help_text, description=_DESCRIPTION, formatter_class=HelpFormatter
    )
    size = p.add_mutually_exclusive_group()
    for name, text in (
        ("smoke", "tiny zoos, seconds (tests)"),
        ("small", "under 15 min on 2 CPU cores (the default profile)"),
        ("full", "larger zoos, more tasks, default SNE epochs (hours)"),
    ):
        size.add_argument(f"--{name}", dest="profile", action="store_const", const=name, help=text)
    p.set_defaults(profile="small", func=main)
    p.add_argument("--out", default="BENCHMARKS.md", help="markdown file to update")
    p.add_argument("--png", default="docs/bench_scatter.png", help="scatter plot path")
    p.add_argument("--seeds", type=int, default=3, help="how many seeds")
    p.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds are first-seed ... first-seed+seeds-1: replicate on fresh seeds",
    )
    by_profile = "; ".join(f"{k}: {', '.join(t.name for t in v)}" for k, v in PROFILES.items())
    p.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help=f"task names (default: all of the profile). By profile: {by_profile}",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",  # no argparse choices: lookup() says "did you mean"
        help=f"method names (default: all): {', '.join(METHODS)}",
    )
    p.add_argument("--cache", default="runs/bench", help="folder of cached zoos")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _notes(profile: str) -> str:
    from sne_plugin.research.bench.methods import EPOCH_CAPS

    caps = EPOCH_CAPS.get(profile, {})
    if not caps:
        return "All estimators at their defaults."
    text = ", ".join(f"{k} {v}" for k, v in caps.items())
    return (
        f"Profile `{profile}`: estimators at their defaults except these epoch caps, "
        f"which keep it inside its time budget: {text}. A method capped this way is not "
        "at its defaults (SNE: 40 epochs, early stopping)."
    )


def main(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args`` and write the report."""
    from sne_plugin.research.bench.report import render, replace_block, scatter_png
    from sne_plugin.research.bench.runner import BenchConfig, run_benchmark
    from sne_plugin.research.bench.tasks import select_tasks

    start = time.perf_counter()
    if args.seeds < 1 or args.workers < 1:
        raise SNEError(f"expected --seeds and --workers >= 1, got {args.seeds} and {args.workers}")
    if args.first_seed < 0:
        raise SNEError(f"expected --first-seed >= 0, got {args.first_seed}")
    tasks = select_tasks(args.profile, args.tasks)
    config = BenchConfig(
        args.profile,
        args.tasks,
        args.methods,
        args.seeds,
        args.cache,
        args.workers,
        not args.quiet,
        args.first_seed,
    )
    results, zoo_s = run_benchmark(config)
    methods = config.methods or []
    png = args.png if scatter_png(results, tasks[0].name, args.png) else None
    rel_png = _relative(png, args.out) if png else None
    command = (
        "sne bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "bench"
        else f"sne bench --{args.profile}"
    )
    body = render(
        results,
        tasks,
        methods,
        command=command,
        seeds=args.seeds,
        zoo_s=zoo_s,
        total_s=time.perf_counter() - start,
        notes=_notes(args.profile),
        png=rel_png,
    )
    replace_block(args.out, body)
    print(body)
    return 0


def _relative(path: str, out: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(out).resolve().parent))
    except ValueError:
        return str(Path(path).resolve())
