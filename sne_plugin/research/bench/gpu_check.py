"""The GPU checks, as one script that finishes within a few minutes on an H100/H200.

    python -m sne_plugin.research.bench.gpu_check --out $OUT

1. A regressor fitted on CUDA, saved, loads and predicts the same in a process with no GPU.
2. Encoding throughput (fp32 and bf16, eager and torch.compile) and peak memory beyond the
   weights, from a batch of Small-CNN-Zoo networks to a 100-million-parameter network.
3. Training throughput (forward + backward + AdamW, bf16 autocast).
4. Achieved TFLOP/s (FLOPs counted by torch's FlopCounterMode) against the card's bf16 peak.
5. fit time per epoch on 1,000 Small-CNN-Zoo-sized networks and predict latency for one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sne_plugin import SNERegressor, read_weights
from sne_plugin.encoder.model import SNENet
from sne_plugin.encoder.plan import make_batch, spec_plan
from sne_plugin.research.bench._models import MODELS, mlp
from sne_plugin.research.bench.methods import LIGHT
from sne_plugin.research.bench.perf import ENCODER, predict_one_ms, zoo_like

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DRY = not torch.cuda.is_available()  # a CPU dry run of the script, with small sizes
RESULTS: dict[str, object] = {}


def log(key: str, value: object) -> None:
    RESULTS[key] = value
    print(f"{key}: {json.dumps(value)}", flush=True)


def sync() -> None:
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _reset_memory() -> None:
    if DEV.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _allocated() -> int:
    return torch.cuda.memory_allocated() if DEV.type == "cuda" else 0


def _peak() -> int:
    return torch.cuda.max_memory_allocated() if DEV.type == "cuda" else 0


def check_cpu_load(out: Path) -> None:
    nets, y = zoo_like(256 if not DRY else 64)
    reg = SNERegressor(epochs=3, random_state=0).fit(nets, y)
    log("fitted_device", str(reg.device_))
    path = out / "sne_cuda.sne"
    reg.save(path)
    np.save(out / "pred_cuda.npy", reg.predict(nets[:64]))
    code = (
        "import numpy as np, torch, sys; from sne_plugin.research.bench.perf import zoo_like;"
        "from sne_plugin import SNERegressor; assert not torch.cuda.is_available();"
        f"r = SNERegressor.load('{path}'); nets, _ = zoo_like(256); p = r.predict(nets[:64]);"
        f"print(str(r.device_), 'max abs difference', float(np.abs(p - np.load('{out / 'pred_cuda.npy'}')).max()))"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    log("cpu_load", res.stdout.strip() or res.stderr[-500:])
    (out / "sne_cuda.sne").unlink()


def encode_row(
    name: str,
    nets: list,
    dtype: str,
    compile_: bool,
    repeats: int = 3,
    pass_chunks: int = 0,
    settings: dict[str, Any] | None = None,
) -> dict[str, object]:
    torch.manual_seed(0)
    config: dict[str, Any] = {**ENCODER, **(settings or {})}
    config.update({"max_chunks_per_pass": pass_chunks} if pass_chunks else {})
    model = SNENet(hidden=config["width"], **config).to(DEV).eval()
    flat = torch.cat([torch.from_numpy(n.flatten()) for n in nets]).to(DEV)
    batch = make_batch([n.spec for n in nets], config["chunk_size"], config["max_set"]).to(DEV)
    elements = sum(int(spec_plan(n.spec, config["chunk_size"]).chunk_valid.sum()) for n in nets)
    run = torch.compile(model) if compile_ else model
    _reset_memory()
    base = _allocated()

    def go() -> None:
        with (
            torch.inference_mode(),
            torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=dtype == "bf16"),
        ):
            run(batch, flat)

    seconds = timed(go, repeats)
    params = sum(n.num_params for n in nets)
    row = {
        "model": name,
        "networks": len(nets),
        "params": params,
        "elements": elements,
        "dtype": dtype,
        "compiled": compile_,
        "max_chunks_per_pass": config["max_chunks_per_pass"],
        "seconds": seconds,
        "M_elements_per_s": elements / seconds / 1e6,
        "M_params_per_s": params / seconds / 1e6,
        "peak_MB_beyond_weights": (_peak() - base) / 2**20,
        "weights_MB": params * 4 / 2**20,
    }
    mode = "compiled" if compile_ else "eager"
    log(f"encode/{name}/{dtype}/{mode}" + (f"/pass{pass_chunks}" if pass_chunks else ""), row)
    return row


def flops_per_element(nets: list[Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = SNENet(hidden=ENCODER["width"], **ENCODER).to(DEV).eval()
    flat = torch.cat([torch.from_numpy(n.flatten()) for n in nets]).to(DEV)
    batch = make_batch([n.spec for n in nets], ENCODER["chunk_size"], ENCODER["max_set"]).to(DEV)
    counter = FlopCounterMode(display=False)
    with counter:
        model(batch, flat)
    elements = sum(int(spec_plan(n.spec, ENCODER["chunk_size"]).chunk_valid.sum()) for n in nets)
    return counter.get_total_flops() / elements


def train_row(name: str, nets: list[Any], steps: int = 5) -> dict[str, object]:
    torch.manual_seed(0)
    model = SNENet(hidden=ENCODER["width"], **ENCODER).to(DEV).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    flat = torch.cat([torch.from_numpy(n.flatten()) for n in nets]).to(DEV)
    batch = make_batch([n.spec for n in nets], ENCODER["chunk_size"], ENCODER["max_set"]).to(DEV)
    elements = sum(int(spec_plan(n.spec, ENCODER["chunk_size"]).chunk_valid.sum()) for n in nets)
    target = torch.rand(len(nets), device=DEV)

    def step() -> None:
        with torch.autocast(DEV.type, dtype=torch.bfloat16):
            out = model(batch, flat)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    _reset_memory()

    def run_steps() -> None:
        for _ in range(steps):
            step()

    seconds = timed(run_steps, 1) / steps
    row = {
        "model": name,
        "networks": len(nets),
        "elements": elements,
        "seconds_per_step": seconds,
        "M_elements_per_s": elements / seconds / 1e6,
        "peak_MB": _peak() / 2**20,
    }
    log(f"train/{name}", row)
    return row


def fit_predict() -> None:
    nets, y = zoo_like(1000 if not DRY else 40)
    reg = SNERegressor(epochs=2, validation_fraction=0.0, random_state=0)
    start = time.perf_counter()
    reg.fit(nets, y)
    log("fit_1000_s_per_epoch", (time.perf_counter() - start) / 2)
    log("predict_one_ms", predict_one_ms(reg, nets))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    log("device", torch.cuda.get_device_name(0) if not DRY else "cpu (dry run)")
    log("torch", torch.__version__)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("cpu_load", lambda: check_cpu_load(args.out)),
        ("fit", fit_predict),
    ]
    zoo_batch = zoo_like(1024 if not DRY else 16)[0]
    sizes = {"small_cnn x1024": zoo_batch}
    big = ("resnet18 (11.7M)", "vit_s16 (22M)", "vit_b16 (86M)", "mlp (100M)") if not DRY else ()
    for name in big:
        sizes[name] = [read_weights(MODELS[name]())]
    sizes["mlp (1M)"] = [read_weights(mlp(512, 4) if not DRY else mlp(64, 2))]
    sizes["mlp (10M)"] = [read_weights(mlp(1400, 5) if not DRY else mlp(64, 2))]
    sizes.setdefault("resnet18 (11.7M)", sizes["mlp (1M)"])
    sizes.setdefault("mlp (100M)", sizes["mlp (1M)"])
    for name, nets in sizes.items():
        for dtype in ("fp32", "bf16"):
            steps.append((f"enc {name} {dtype}", partial(encode_row, name, nets, dtype, False)))
    steps.append(
        ("flops", lambda: log("flops_per_element", flops_per_element(sizes["resnet18 (11.7M)"])))
    )
    steps.append(("train small", lambda: train_row("small_cnn x256", zoo_batch[:256])))
    steps.append(("train resnet", lambda: train_row("resnet18 (11.7M)", sizes["resnet18 (11.7M)"])))
    for chunks in (2048, 32768, 131072):  # the pass size sets both speed and the memory cap
        steps.append(
            (
                f"pass {chunks}",
                partial(encode_row, "mlp (10M)", sizes["mlp (10M)"], "bf16", False, 3, chunks),
            )
        )
    steps.append(
        (
            "light",
            lambda: encode_row(
                "resnet18 (11.7M) light", sizes["resnet18 (11.7M)"], "bf16", False, settings=LIGHT
            ),
        )
    )
    # Compiling last: the 100M-parameter compile once ate the whole budget.
    for name in ("small_cnn x1024", "resnet18 (11.7M)") if not DRY else ():
        steps.append((f"compile {name}", partial(encode_row, name, sizes[name], "bf16", True)))
    for label, fn in steps:
        if time.time() - start > 330:
            log(f"skipped/{label}", "time budget")
            continue
        try:
            fn()
        except Exception as exc:  # keep going: one failure must not lose the other figures
            log(f"error/{label}", repr(exc)[-400:])
        (args.out / "gpu_results.json").write_text(json.dumps(RESULTS, indent=1))
    log("total_s", time.time() - start)
    (args.out / "gpu_results.json").write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
