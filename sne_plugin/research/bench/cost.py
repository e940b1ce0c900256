"""What a fit and a prediction of ``SNERegressor`` cost at its defaults, beside StatNN and NFN-HNP.

    python -m sne_plugin.research.bench.cost --zoo runs/cost_zoo --out benchmarks/results/cost.md

On a ``small_cnn`` zoo of 1,000 networks (built at ``--zoo`` with
:func:`sne_plugin.research.zoo.build_zoo` when the folder does not hold one yet; about 5,000
parameters each) it measures, in one run and one process with one torch thread:

- the fit of ``SNERegressor(random_state=0)`` at its defaults on all the networks (no epoch
  cap beyond the default; early stopping on): wall seconds, CPU seconds of this process
  (what the same fit takes on an idle core) and the epochs it ran;
- ``predict`` of one network: the median of 50 calls, in milliseconds;
- StatNN's and NFN-HNP's fits on the same networks and targets, as ratios of SNE's time;
- the peak resident memory of a fit at ``n`` networks, n in 100, 300, 1,000, 3,000 and
  10,000, each in a fresh subprocess (``resource.getrusage``), beside the memory the
  networks themselves take there. Above 1,000 the zoo's networks are repeated, each copy
  with Gaussian noise of 1% of its weights' standard deviation added, to save building a
  zoo of 10,000; the targets repeat with them. These fits run ``--rss-epochs`` epochs
  (default 2): every epoch frees its minibatches' graphs, so the peak does not grow with
  the epoch count, and the whole curve then costs minutes, not hours.

CPU seconds are the figure to compare across machines; the wall seconds depend on what else
the machine runs (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (100, 300, 1000, 3000, 10000)
ZOO_SIZE = 1000


def zoo_data(path: str, n: int | None = None) -> tuple[list[Any], np.ndarray]:
    """``n`` networks and test accuracies from the zoo at ``path`` (built if missing); beyond
    the zoo's size its networks repeat with noise (see the module docstring)."""
    from sne_plugin.research.zoo import build_zoo, load_zoo

    if (Path(path) / "zoo.json").is_file():
        zoo = load_zoo(path)
    else:
        zoo = build_zoo(path, arch="small_cnn", dataset="digits", n_models=ZOO_SIZE, seed=0)
    nets, y = zoo.weights(), zoo.targets()
    n = len(nets) if n is None else n
    if n <= len(nets):
        return nets[:n], y[:n]
    rng = np.random.default_rng(0)
    out = [
        nets[i % len(nets)] if i < len(nets) else _noisy(nets[i % len(nets)], rng) for i in range(n)
    ]
    return out, np.resize(y, n)


def _noisy(net: Any, rng: np.random.Generator) -> Any:
    import torch

    def jitter(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        scale = 0.01 * float(t.std()) if t.numel() > 1 else 0.0
        return t + torch.from_numpy(rng.normal(0.0, scale, t.shape).astype(np.float32))

    return net.with_layers(
        [layer.replace(jitter(layer.weight), jitter(layer.bias)) for layer in net.layers]
    )


def timed_fit(estimator: Any, X: list[Any], y: np.ndarray) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    estimator.fit(X, y)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def predict_ms(estimator: Any, net: Any, repeats: int = 50) -> float:
    estimator.predict([net])  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        estimator.predict([net])
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def rss_worker(zoo: str, n: int, epochs: int) -> dict[str, Any]:
    """Peak RSS of one fit at ``n`` networks, in this (fresh) process."""
    import torch

    from sne_plugin import SNERegressor

    torch.set_num_threads(1)
    X, y = zoo_data(zoo, n)
    data_mb = _current_rss_mb()
    before_mb = _peak_rss_mb()
    start = time.process_time()
    SNERegressor(random_state=0, device="cpu", epochs=epochs, verbose=False).fit(X, y)
    return {
        "n": n,
        "data_mb": data_mb,
        "peak_before_fit_mb": before_mb,
        "peak_mb": _peak_rss_mb(),
        "fit_cpu_s": time.process_time() - start,
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_curve(zoo: str, sizes: tuple[int, ...], epochs: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        cmd = [
            sys.executable,
            "-m",
            "sne_plugin.research.bench.cost",
            "--zoo",
            zoo,
            "--rss-worker",
            str(n),
        ]
        cmd += ["--rss-epochs", str(epochs)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"rss n={n}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def fit_part(args: argparse.Namespace) -> str:
    """SNE's fit and predict at its defaults, and StatNN's and NFN-HNP's fits, on one zoo."""
    import torch

    from sne_plugin import SNERegressor
    from sne_plugin.research.baselines import StatNNRegressor
    from sne_plugin.research.baselines.nfn import NFNRegressor

    torch.set_num_threads(1)
    X, y = zoo_data(args.zoo)
    load = os.getloadavg()[0]
    sne = SNERegressor(random_state=0, device="cpu", verbose=False)
    fit = timed_fit(sne, X, y)
    ms = predict_ms(sne, X[0])
    print(
        f"SNE fit {fit}, {sne.n_epochs_} epochs, predict {ms:.2f} ms", file=sys.stderr, flush=True
    )
    stat_est = StatNNRegressor(random_state=0)
    stat = timed_fit(stat_est, X, y)
    stat_ms = predict_ms(stat_est, X[0])
    print(f"StatNN fit {stat}, predict {stat_ms:.2f} ms", file=sys.stderr, flush=True)
    rows = [
        (f"SNE fit, defaults, {sne.n_epochs_} epochs (early stopping)", fit),
        ("StatNN fit", stat),
    ]
    if args.nfn:
        nfn = NFNRegressor(mode="hnp", device="cpu", random_state=0)
        nfn_fit = timed_fit(nfn, X, y)
        rows.append((f"NFN-HNP fit, its defaults, {nfn.n_epochs_} epochs", nfn_fit))
    params = {
        k: sne.get_params()[k]
        for k in ("width", "heads", "chunk_size", "chunk_depth", "epochs", "patience", "batch_size")
    }
    lines = [
        f"`python -m sne_plugin.research.bench.cost --part fit --zoo {args.zoo}` (one torch "
        f"thread; load average {load:.1f} before the fits, {os.getloadavg()[0]:.1f} after, on "
        f"{os.cpu_count()} cores). Zoo: {len(X)} `small_cnn` networks on digits; "
        + ", ".join(f"{k}={v}" for k, v in params.items())
        + ".",
        "",
        "| what | wall | CPU of this process | ratio to SNE's fit (CPU) |",
        "|---|---|---|---|",
    ]
    for name, t in rows:
        lines.append(
            f"| {name} | {t['wall_s']:.1f} s | {t['cpu_s']:.1f} s | {t['cpu_s'] / fit['cpu_s']:.3g} |"
        )
    lines += [
        f"| SNE predict, one network (median of 50) | {ms:.2f} ms | | |",
        f"| StatNN predict, one network (median of 50) | {stat_ms:.2f} ms | | |",
    ]
    return "\n".join(lines) + "\n"


def predict_part(args: argparse.Namespace, rounds: int = 5, n_fit: int = 250) -> str:
    """What predicting one network costs, and what each part of it costs, in one process and
    alternating rounds (a machine's drift hits every variant alike): the default; its trees
    fitted on the weight statistics' summary alone (as before the singular values); the
    network alone (no trees); StatNN. The regressor is fitted for 3 epochs on ``n_fit``
    networks: the cost of a prediction does not depend on how long the fit trained."""
    import torch

    from sne_plugin import SNERegressor
    from sne_plugin.regressor import check_targets
    from sne_plugin.research.baselines import StatNNRegressor

    torch.set_num_threads(1)
    X, y = zoo_data(args.zoo, n_fit + 50)
    load = os.getloadavg()[0]
    sne = SNERegressor(random_state=0, device="cpu", verbose=False, epochs=3)
    sne.fit(X[:n_fit], y[:n_fit])
    spectral = sne.trees_
    sne.tree_inputs_ = "summary"
    data = sne._data(X[:n_fit], None)
    summary_only = sne._fit_trees(data, check_targets(y[:n_fit], n_fit, loss=sne.loss_))
    statnn = StatNNRegressor(random_state=0).fit(X[:n_fit], y[:n_fit])
    variants = {
        "SNE at its defaults (trees on summary + singular values)": ("summary+spectral", spectral),
        "SNE, trees on the summary alone (before 2026-12-07, third session)": (
            "summary",
            summary_only,
        ),
        "SNE, the network alone (`stats_boost=False`'s prediction)": ("summary", None),
    }
    times: dict[str, list[float]] = {name: [] for name in [*variants, "StatNN"]}
    held_out = X[n_fit:]
    for r in range(rounds):
        for name, (inputs, trees) in variants.items():
            sne.tree_inputs_, sne.trees_ = inputs, trees
            times[name].append(predict_ms(sne, held_out[r % len(held_out)]))
        times["StatNN"].append(predict_ms(statnn, held_out[r % len(held_out)]))
    stat = statistics.median(times["StatNN"])
    lines = [
        f"`python -m sne_plugin.research.bench.cost --part predict --zoo {args.zoo}` (one torch "
        f"thread; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, on "
        f"{os.cpu_count()} cores): one network per `predict` call, median of 50 calls per "
        f"round, {rounds} alternating rounds.",
        "",
        "| predict one network | median over rounds | rounds | ratio to StatNN |",
        "|---|---|---|---|",
    ]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(
            f"| {name} | {med:.2f} ms | {' / '.join(f'{t:.2f}' for t in ts)} | {med / stat:.2f} |"
        )
    return "\n".join(lines) + "\n"


def rss_part(args: argparse.Namespace) -> str:
    """The peak-RSS curve over ``args.sizes``."""
    rows = rss_curve(args.zoo, tuple(args.sizes), args.rss_epochs)
    lines = [
        f"`python -m sne_plugin.research.bench.cost --part rss --zoo {args.zoo} --rss-epochs "
        f"{args.rss_epochs}`: peak RSS of `SNERegressor(random_state=0, epochs={args.rss_epochs})"
        ".fit` at its other defaults, a fresh process per size (networks beyond the zoo's own: "
        "its networks repeated with 1% noise). 'Holding the networks': the RSS once Python, "
        "torch and the networks are loaded, before the fit.",
        "",
        "| networks | RSS holding the networks | peak RSS of the fit | peak beyond the networks | fit CPU |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['data_mb']:.0f} MB | {r['peak_mb']:.0f} MB | "
            f"{r['peak_mb'] - r['data_mb']:.0f} MB | {r['fit_cpu_s']:.1f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", default="runs/cost_zoo")
    parser.add_argument("--out", default=None, help="also write the report here (markdown)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--rss-epochs", type=int, default=2)
    parser.add_argument("--no-nfn", dest="nfn", action="store_false", help="skip NFN-HNP")
    parser.add_argument("--part", choices=("all", "fit", "predict", "rss"), default="all")
    parser.add_argument("--rss-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_worker is not None:
        print(json.dumps(rss_worker(args.zoo, args.rss_worker, args.rss_epochs)))
        return
    parts = []
    if args.part in ("all", "fit"):
        parts.append(fit_part(args))
    if args.part in ("all", "predict"):
        parts.append(predict_part(args))
    if args.part in ("all", "rss"):
        parts.append(rss_part(args))
    text = "# Cost of SNERegressor at its defaults\n\n" + "\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
