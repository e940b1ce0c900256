"""Turn the JSON written by gpu_check.py into the markdown table of BENCHMARKS.md.

python -m sne_plugin.research.bench.gpu_report benchmarks/results/gpu_check_h200.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(path: str) -> None:
    data = json.loads(Path(path).read_text())
    flops = data.get("flops_per_element")
    print(f"Device: {data['device']}, torch {data['torch']}\n")
    print(
        "| network(s) | params | set elements | dtype | mode | encode s | M elements/s | M params/s | peak MB beyond weights | weights MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, row in data.items():
        if not key.startswith("encode/"):
            continue
        mode = "compiled" if row["compiled"] else "eager"
        print(
            f"| {row['model']} | {row['params']:,} | {row['elements']:,} | {row['dtype']} | {mode} | {row['seconds']:.3f} "
            f"| {row['M_elements_per_s']:.1f} | {row['M_params_per_s']:.1f} | {row['peak_MB_beyond_weights']:.0f} | {row['weights_MB']:.0f} |"
        )
    print()
    for key in ("fitted_device", "cpu_load", "fit_1000_s_per_epoch", "predict_one_ms", "total_s"):
        if key in data:
            print(f"- {key}: {data[key]}")
    if flops:
        print(f"- FLOPs per set element (forward): {flops:,.0f}")
    for key, value in data.items():
        if key.startswith(("error/", "skipped/", "train/")):
            print(f"- {key}: {value}")


def plot(path: str, png: str) -> None:
    """Log-log plot of encode time and peak memory against parameters (single networks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        r
        for k, r in json.loads(Path(path).read_text()).items()
        if k.startswith("encode/") and r["networks"] == 1 and not r["compiled"]
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for dtype, marker in (("fp32", "o"), ("bf16", "s")):
        sel = sorted((r for r in rows if r["dtype"] == dtype), key=lambda r: r["elements"])
        params = [r["elements"] for r in sel]
        axes[0].loglog(params, [r["seconds"] for r in sel], marker + "-", label=f"{dtype} eager")
        axes[1].loglog(
            params,
            [r["peak_MB_beyond_weights"] for r in sel],
            marker + "-",
            label=f"beyond weights, {dtype}",
        )
    sel = sorted((r for r in rows if r["dtype"] == "fp32"), key=lambda r: r["elements"])
    p0, t0 = sel[-1]["elements"], sel[-1]["seconds"]
    axes[0].loglog(
        [r["elements"] for r in sel], [t0 * r["elements"] / p0 for r in sel], "k--", label="linear"
    )
    axes[1].loglog(
        [r["elements"] for r in sel], [r["weights_MB"] for r in sel], "k--", label="weights (fp32)"
    )
    axes[0].set(xlabel="set elements", ylabel="encode time (s)", title="H200: encode time")
    axes[1].set(xlabel="set elements", ylabel="MB", title="H200: peak memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", help="the JSON written by gpu_check")
    parser.add_argument("png", nargs="?", default=None, help="also plot scaling to this PNG")
    args = parser.parse_args()
    main(args.json)
    if args.png is not None:
        plot(args.json, args.png)
