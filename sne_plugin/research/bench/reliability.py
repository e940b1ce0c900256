"""Hostile inputs, each read in its own capped process: outcome, wall time and peak memory.

Each case builds a small file that claims more than it holds (a stride-0 tensor, deflated
zeros, huge or deeply nested ONNX metadata) or carries code (a pickle with a ``__reduce__``
payload), then reads it with the package in a child process limited to ``--memory-gb`` of
address space and ``--timeout`` seconds. Prints a Markdown table::

    python -m sne_plugin.research.bench.reliability

A case "ran code" when its payload's marker file exists after the read.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = ["CASES", "main"]


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.marker, "w"))


def _use(path: Path) -> str:
    """Read ``path`` and use the network as the encoder would (finite check, flat vector)."""
    return f"net = read_weights({str(path)!r})\nnet.is_finite()\nnet.flatten()"


def _stride0(n: int) -> Callable[[Path], tuple[Path, str]]:
    def make(folder: Path) -> tuple[Path, str]:
        path = folder / "stride0.pt"
        torch.save({"fc.weight": torch.zeros(1).expand(n, n)}, path)
        return path, _use(path)

    return make


def _zeros_npz(folder: Path) -> tuple[Path, str]:
    path = folder / "zeros.npz"
    arrays: dict[str, np.ndarray] = {"fc.weight": np.zeros((16_000, 16_000), np.float32)}
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    return path, _use(path)


def _zeros_pt(folder: Path) -> tuple[Path, str]:
    import zipfile

    plain, path = folder / "plain.pt", folder / "zeros.pt"
    torch.save({"fc.weight": torch.zeros(12_000, 12_000)}, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    plain.unlink()
    return path, _use(path)


def _onnx_meta(value: str, name: str) -> Callable[[Path], tuple[Path, str]]:
    def make(folder: Path) -> tuple[Path, str]:
        from onnx import helper, numpy_helper

        weight = numpy_helper.from_array(np.ones((3, 2), np.float32), "val_1")
        node = helper.make_node("Gemm", ["x", "val_1"], ["y"], name="gemm", transB=1)
        prop = node.metadata_props.add()
        prop.key, prop.value = "pkg.torch.onnx.name_scopes", value
        model = helper.make_model(helper.make_graph([node], "g", [], [], [weight]))
        path = folder / name
        path.write_bytes(model.SerializeToString())
        return path, _use(path)

    return make


def _pickle(joblib_file: bool) -> Callable[[Path], tuple[Path, str]]:
    def make(folder: Path) -> tuple[Path, str]:
        marker = str(folder / "ran")
        path = folder / "evil.joblib"
        if joblib_file:
            import joblib

            joblib.dump(_Payload(marker), path)
        else:
            path.write_bytes(pickle.dumps(_Payload(marker)))
        return path, f"SNERegressor.load({str(path)!r})"

    return make


def _deep_key(folder: Path) -> tuple[Path, str]:
    path = folder / "deep.txt"
    return path, "k = ()\nfor _ in range(1000): k = (k,)\nread_weights({k: [[1.0]]})"


CASES: dict[str, tuple[str, Callable[[Path], tuple[Path, str]]]] = {
    "stride0-1e6": (".pt, zeros(1).expand(10**6, 10**6)", _stride0(10**6)),
    "stride0-2^14": (".pt, zeros(1).expand(2**14, 2**14)", _stride0(2**14)),
    "zeros-npz": (".npz, 1 GB of deflated zeros", _zeros_npz),
    "zeros-pt": (".pt, 576 MB of deflated zeros", _zeros_pt),
    "onnx-meta-16mb": (
        ".onnx, 16 MB name_scopes metadata",
        _onnx_meta("['a', " * 2_800_000 + "]", "big.onnx"),
    ),
    "onnx-meta-deep": (
        ".onnx, 10^6-deep nested metadata",
        _onnx_meta("[" * 1_000_000, "deep.onnx"),
    ),
    "pickle": ("pickle with __reduce__ payload", _pickle(False)),
    "joblib": ("joblib with __reduce__ payload", _pickle(True)),
    "deep-key": ("state dict, 1,000-deep tuple key", _deep_key),
}

_CHILD = """
import sys, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(1)
from sne_plugin import SNERegressor, read_weights
from sne_plugin.errors import SNEError
import resource, time
print("BASE", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
start = time.perf_counter()
try:
{code}
    print("OUTCOME ok")
except SNEError as exc:
    print("OUTCOME SNEError: " + str(exc)[:90].replace("|", "/"))
except BaseException as exc:
    print("OUTCOME " + type(exc).__name__ + ": " + str(exc)[:90].replace("|", "/"))
finally:
    print("TIME", time.perf_counter() - start)
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _limit(memory_gb: float) -> Callable[[], None]:
    def apply() -> None:
        cap = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return apply


def run_case(code: str, memory_gb: float, timeout: float) -> tuple[str, float, float]:
    """(outcome, seconds, peak RSS growth in MB over the imports) of ``code`` in a capped
    child process (seconds: of the read alone, or the whole run when it timed out)."""
    body = "\n".join("    " + line for line in code.splitlines())
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(code=body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=_limit(memory_gb),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, _ = child.communicate()
        out += f"\nOUTCOME timed out after {timeout:.0f} s"
    values = {}
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        if key in ("BASE", "TIME", "PEAK", "OUTCOME"):
            values[key] = rest
    outcome = values.get("OUTCOME", f"exit {child.returncode}")
    seconds = float(values.get("TIME", time.perf_counter() - start))
    growth = float(values.get("PEAK", "nan")) - float(values.get("BASE", "nan"))
    return outcome, seconds, growth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    args = parser.parse_args(argv)
    print("| input | file size | outcome | seconds | peak memory (MB over imports) | ran code |")
    print("|---|---|---|---|---|---|")
    for name in args.cases:
        label, make = CASES[name]
        with tempfile.TemporaryDirectory() as folder:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path, code = make(Path(folder))
            size = path.stat().st_size if path.exists() else 0
            outcome, seconds, peak = run_case(code, args.memory_gb, args.timeout)
            ran = "yes" if (Path(folder) / "ran").exists() else "no"
        print(f"| {label} | {size:,} B | {outcome} | {seconds:.2f} | {peak:.0f} | {ran} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
