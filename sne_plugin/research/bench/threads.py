"""Torch CPU threads for SNERegressor: fit and predict with 1 and 2 threads, idle and loaded.

    python -m sne_plugin.research.bench.threads --out benchmarks/results/threads.md

"Loaded" runs two busy processes beside the measured one (as the workers of a parallel
search do on a 2-core machine). Each cell runs in a fresh process, so its thread setting is
its own; the figures are medians, and on a shared machine only the ratios within one run
mean much.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from sne_plugin.research.bench.perf import predict_one_ms, zoo_like


def _burn(stop: Any) -> None:
    """A busy process: pure Python arithmetic until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x += i * i


def measure(threads: int, n_networks: int, epochs: int) -> dict[str, float]:
    """Seconds per fit epoch and milliseconds per one-network predict, in this process."""
    from sne_plugin import SNERegressor

    torch.set_num_threads(threads)
    nets, y = zoo_like(n_networks)
    reg = SNERegressor(epochs=epochs, validation_fraction=0.0, random_state=0, threads=None)
    start = time.perf_counter()
    reg.fit(nets, y)
    epoch_s = (time.perf_counter() - start) / epochs
    return {"epoch_s": epoch_s, "predict_ms": predict_one_ms(reg, nets)}


def run_cell(threads: int, loaded: bool, args: argparse.Namespace) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    burners = [ctx.Process(target=_burn, args=(stop,)) for _ in range(2 if loaded else 0)]
    for p in burners:
        p.start()
    try:
        cmd = [sys.executable, "-m", "sne_plugin.research.bench.threads", "--one", str(threads),
               "--networks", str(args.networks), "--epochs", str(args.epochs)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        stop.set()
        for p in burners:
            p.join()


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| torch threads | machine | fit s/epoch | predict one, ms |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['machine']} | {r['epoch_s']:.2f} | {r['predict_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", type=int, default=64, help="networks fitted (default 64)")
    parser.add_argument("--epochs", type=int, default=2, help="fit epochs (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (default 3)")
    parser.add_argument("--out", default="benchmarks/results/threads.md")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.networks, args.epochs)))
        return
    rows = []
    for loaded in (False, True):
        for threads in (1, 2):
            runs = [run_cell(threads, loaded, args) for _ in range(args.repeats)]
            row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            rows.append({"threads": threads, "machine": "loaded" if loaded else "idle", **row})
            print(rows[-1], file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(f"# Torch threads\n\n`{' '.join(sys.argv)}`\n\n{text}")


if __name__ == "__main__":
    main()
