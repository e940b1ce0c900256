"""Encoder performance: throughput and peak memory from 5 thousand to 100 million parameters,
plus fit and predict times on Small-CNN-Zoo-sized networks, with StatNN beside SNE.

    python -m sne_plugin.research.bench.perf --device cpu --max-params 3e7 --out benchmarks/results/perf_cpu.md
    python -m sne_plugin.research.bench.perf --device cuda --out benchmarks/results/perf_gpu.md

Every model is encoded in a fresh subprocess, so that its peak memory is its own. Figures
are medians of several runs; CPU figures on a shared machine are noisy: compare the ratios
within one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sne_plugin import NetworkWeights, SNERegressor, read_weights
from sne_plugin.encoder.model import SNENet
from sne_plugin.encoder.plan import make_batch, spec_plan
from sne_plugin.research.bench._models import MODELS, small_cnn
from sne_plugin.research.bench.report import machine as bench_machine

DEFAULTS = SNERegressor()
ENCODER: dict[str, Any] = DEFAULTS._encoder_settings()  # the defaults' encoder, not a copy


def encode_one(
    name: str, device: str, dtype: str, compile_: bool, repeats: int
) -> dict[str, float]:
    """Encode one model a few times; runs inside its own process."""
    torch.manual_seed(0)
    net = read_weights(MODELS[name]())
    dev = torch.device(device)
    model = SNENet(hidden=ENCODER["width"], **ENCODER).to(dev).eval()
    plan = spec_plan(net.spec, ENCODER["chunk_size"])
    elements = int(plan.chunk_valid.sum())
    flat = torch.from_numpy(net.flatten()).to(dev)
    base_mem = _memory(dev)
    batch = make_batch([net.spec], ENCODER["chunk_size"], ENCODER["max_set"]).to(dev)
    run = torch.compile(model) if compile_ else model
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    times = []
    with torch.no_grad(), amp:
        for i in range(repeats + 1):
            _sync(dev)
            start = time.perf_counter()
            run(batch, flat)
            _sync(dev)
            if i:  # the first run warms up (and compiles)
                times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {
        "params": net.num_params,
        "elements": elements,
        "chunks": plan.num_chunks,
        "seconds": seconds,
        "params_per_s": net.num_params / seconds,
        "elements_per_s": elements / seconds,
        "peak_mb_beyond_weights": (_peak(dev) - base_mem) / 2**20,
        "weights_mb": net.num_params * 4 / 2**20,
    }


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _memory(dev: torch.device) -> int:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        return torch.cuda.memory_allocated(dev)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak(dev: torch.device) -> int:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def encode_all(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for name, factory in MODELS.items():
        n_params = sum(p.numel() for p in factory().parameters()) if "100M" not in name else 1e8
        if n_params > args.max_params or (args.models and name not in args.models):
            continue
        for dtype in args.dtypes:
            for compile_ in [False, True] if args.compile else [False]:
                cmd = [
                    sys.executable,
                    "-m",
                    __spec__.name if __spec__ else "sne_plugin.research.bench.perf",
                    "--one",
                    name,
                    "--device",
                    args.device,
                    "--dtype",
                    dtype,
                    "--repeats",
                    str(args.repeats),
                    "--threads",
                    str(args.threads),
                ]
                cmd += ["--compile"] if compile_ else []
                cmd += ["--pass-chunks", str(args.pass_chunks)] if args.pass_chunks else []
                cmd += ["--encoder", args.encoder] if args.encoder else []
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                if out.returncode:
                    print(f"{name} {dtype}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                    rows.append(
                        {
                            "model": name,
                            "dtype": dtype,
                            "compile": compile_,
                            "error": out.stderr[-300:],
                        }
                    )
                    continue
                row = {
                    "model": name,
                    "dtype": dtype,
                    "compile": compile_,
                    **json.loads(out.stdout.strip().splitlines()[-1]),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def zoo_like(n: int, seed: int = 0) -> tuple[list[NetworkWeights], np.ndarray]:
    """``n`` Small-CNN-Zoo-sized networks with random weights at random scales, and targets."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the modules' own initialisation
    nets, ys = [], []
    for _ in range(n):
        model = small_cnn()
        scale = float(torch.rand(1, generator=g)) * 1.5 + 0.25
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
        nets.append(read_weights(model))
        ys.append(min(0.95, 0.2 + 0.5 * scale))
    return nets, np.array(ys)


def predict_one_ms(model: Any, nets: list[Any], repeats: int = 30) -> float:
    """Median latency of ``predict`` on one network (the pruner's hot path), after a warm-up."""
    model.predict(nets[:1])
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        model.predict([nets[i % len(nets)]])
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def fit_predict(args: argparse.Namespace) -> dict[str, float]:
    """Fit time per epoch on 1,000 networks, predict latency for one, StatNN beside it."""
    from sne_plugin.research.baselines import StatNNRegressor

    nets, y = zoo_like(args.n_networks)
    out: dict[str, float] = {}
    reg = SNERegressor(
        epochs=args.fit_epochs, validation_fraction=0.0, device=args.device, random_state=0
    )
    start = time.perf_counter()
    reg.fit(nets, y)
    out["sne_fit_s_per_epoch"] = (time.perf_counter() - start) / args.fit_epochs
    out["sne_fit_s_default_max_epochs"] = out["sne_fit_s_per_epoch"] * DEFAULTS.epochs
    out["sne_predict_one_ms"] = predict_one_ms(reg, nets)
    start = time.perf_counter()
    reg.predict(nets)
    out["sne_predict_networks_per_s"] = len(nets) / (time.perf_counter() - start)
    stat = StatNNRegressor(random_state=0)
    start = time.perf_counter()
    stat.fit(nets, y)
    out["statnn_fit_s"] = time.perf_counter() - start
    out["statnn_predict_one_ms"] = predict_one_ms(stat, nets)
    out.update(_nfn_hnp(nets, y, args))
    return out


def _nfn_hnp(nets: list[Any], y: np.ndarray, args: argparse.Namespace) -> dict[str, float]:
    """NFN-HNP (PyPI ``nfn``) on the same networks: whole fit at its defaults, predict one."""
    try:
        from sne_plugin.research.baselines.nfn import NFNRegressor
    except ImportError:  # the bench extra is not installed
        return {}
    nfn = NFNRegressor(mode="hnp", device=args.device, random_state=0)  # its default epochs
    start = time.perf_counter()
    nfn.fit(nets, y)
    out = {f"nfn_hnp_fit_s ({nfn.epochs} epochs)": time.perf_counter() - start}
    out["nfn_hnp_predict_one_ms"] = predict_one_ms(nfn, nets)
    return out


def machine(device: str) -> str:
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    return bench_machine(name, f"{torch.get_num_threads()} torch threads")


def report(
    args: argparse.Namespace, rows: list[dict[str, Any]], fit: dict[str, float] | None
) -> str:
    lines = [
        f"### Encoder performance ({args.device})",
        "",
        f"Command: `python -m sne_plugin.research.bench.perf {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine(args.device)}  ",
        f"Date: {time.strftime('%Y-%m-%d')}",
        "",
        "| model | params | set elements | chunks | dtype | compiled | encode s | M params/s | M elements/s | peak MB beyond weights | weights MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['model']} | | | | {r['dtype']} | {r['compile']} | failed: {str(r['error'])[-120:]!r} | | | | |"
            )
            continue
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['elements']:,} | {r['chunks']:,} | {r['dtype']} | {r['compile']} "
            f"| {r['seconds']:.4f} | {r['params_per_s'] / 1e6:.2f} | {r['elements_per_s'] / 1e6:.2f} "
            f"| {r['peak_mb_beyond_weights']:.0f} | {r['weights_mb']:.0f} |"
        )
    if fit:
        lines += [
            "",
            f"Fit and predict on {args.n_networks:,} Small-CNN-Zoo-sized networks (4,970 parameters):",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.3f} |" for k, v in fit.items()]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [
        r for r in rows if "error" not in r and r["dtype"] == rows[0]["dtype"] and not r["compile"]
    ]
    good = sorted(good, key=lambda r: float(r["elements"]))  # type: ignore[arg-type]
    elements = np.array([r["elements"] for r in good], float)
    params = np.array([r["params"] for r in good], float)
    seconds = np.array([r["seconds"] for r in good], float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    # Time against set elements (what the encoder sees: a k x k kernel is one element).
    axes[0].loglog(elements, seconds, "o", label="measured")
    for r, x, t in zip(good, elements, seconds, strict=True):
        axes[0].annotate(
            str(r["model"]), (x, t), fontsize=7, xytext=(3, -9), textcoords="offset points"
        )
    axes[0].loglog(elements, elements / elements[-1] * seconds[-1], "--", label="linear")
    axes[0].set(xlabel="set elements", ylabel="encode time (s)", title="time")
    axes[1].loglog(
        params,
        [max(float(r["peak_mb_beyond_weights"]), 1e-1) for r in good],  # type: ignore[arg-type]
        "o",
        label="peak beyond weights",
    )
    axes[1].loglog(params, [r["weights_mb"] for r in good], "s", label="weights")
    axes[1].set(xlabel="parameters", ylabel="MB", title="peak memory")
    for ax in axes:
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", nargs="+", default=None, help="fp32 and/or bf16")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--max-params", type=float, default=1.5e8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--n-networks", type=int, default=1000)
    parser.add_argument("--fit-epochs", type=int, default=2)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--pass-chunks", type=int, default=None, help="max_chunks_per_pass (default: the default)"
    )
    parser.add_argument("--models", nargs="+", default=None, help="only models named so")
    parser.add_argument(
        "--encoder", default=None, help="encoder settings over the defaults, e.g. '{\"width\": 16}'"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.pass_chunks:
        ENCODER["max_chunks_per_pass"] = args.pass_chunks
    if args.encoder:
        ENCODER.update(json.loads(args.encoder))
    if args.one:
        print(json.dumps(encode_one(args.one, args.device, args.dtype, args.compile, args.repeats)))
        return
    args.dtypes = args.dtypes or (["fp32", "bf16"] if args.device == "cuda" else ["fp32"])
    rows = encode_all(args)
    fit = None if args.skip_fit else fit_predict(args)
    text = report(args, rows, fit)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        plot(rows, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
