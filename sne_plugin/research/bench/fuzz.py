"""Property check of the readers: every input ends in a result or an ``SNEError``.

Three families of inputs, drawn with ``hypothesis``:

* ``onnx``: random small ONNX graphs (ops the reader knows and some it does not, random
  inputs, outputs and attributes of random types, initializers of random data types and
  shapes, external-data entries with odd locations), read in memory and from a file;
* ``state_dict``: random state dicts (odd keys; tensors of random dtypes, layouts and views;
  numpy arrays of random byte orders; lists, scalars, None), read in memory, as a ``.pt``
  checkpoint and, when they are numpy arrays, as an ``.npz`` archive;
* ``mutant``: byte-level mutants (flipped bytes, cut, spliced or repeated slices) of a real
  ONNX file exported by ``torch.onnx.export`` and of a real ``.pt`` checkpoint.

An input "escapes" when reading it raises anything but an ``SNEError``. The tests run a few
dozen examples of each family (``tests/readers/test_fuzz.py``); this script runs more and
prints the counts per family and outcome::

    python -m sne_plugin.research.bench.fuzz --examples 2000

It exits with status 1 when any input escaped, listing where.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sne_plugin.errors import SNEError
from sne_plugin.readers import read_weights
from sne_plugin.weights import NetworkWeights, max_parameters

__all__ = ["FAMILIES", "Escaped", "outcome", "strategies"]


class Escaped(AssertionError):
    """Reading an input raised something other than an ``SNEError``."""


def outcome(read: Callable[[], object]) -> str:
    """``"ok"`` or ``"SNEError"`` for ``read()``; :class:`Escaped` for anything else.

    A result counts as ok when it is usable: within the parameter cap, its finiteness
    computable and its values flattened into one vector (what the encoder reads).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _use(read())
    except SNEError:
        return "SNEError"
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        site = f"{Path(where.filename).name}:{where.lineno}"
        raise Escaped(f"{type(exc).__name__} at {site}: {str(exc)[:200]}") from exc
    return "ok"


def _use(net: object) -> None:
    if not isinstance(net, NetworkWeights):
        raise TypeError(f"expected NetworkWeights, got {type(net).__name__}")
    if net.num_params > max_parameters():
        raise OverflowError(f"accepted {net.num_params:,} parameters, over the cap")
    net.is_finite()
    if net.flatten().size != net.num_params:
        raise ValueError("flatten() lost parameters")


# ---------------------------------------------------------------------- ONNX graphs
_OPS = (
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "BatchNormalization",
    "LayerNormalization",
    "RMSNormalization",
    "Gather",
    "Constant",
    "Identity",
    "Cast",
    "Transpose",
    "DequantizeLinear",
    "Relu",
    "Reshape",
    "Concat",
    "Shape",
)
_ATTRS: tuple[str, ...] = ("alpha", "beta", "transB", "group", "axis", "to", "perm")
_ATTRS += ("block_size", "value", "value_float", "value_ints", "value_string", "sparse_value")
_DTYPES = (1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 16, 17, 19, 0, 99)  # FLOAT ... FLOAT8, bad ones


def _tensor_proto(st: Any, draw: Any, name: str) -> Any:
    from onnx import TensorProto

    # mostly well-formed FLOAT tensors (so that some graphs read), the rest anything
    plain = draw(st.integers(0, 2)) > 0
    sizes = st.integers(1, 4) if plain else st.integers(0, 4)
    shape = draw(st.lists(sizes, min_size=1 if plain else 0, max_size=4))
    dtype = 1 if plain else draw(st.sampled_from(_DTYPES))
    proto = TensorProto()
    proto.name = name
    proto.dims.extend(shape)
    proto.data_type = dtype
    count = int(np.prod(shape)) if shape else 1
    ways = ["raw", "raw-short", "float_data", "string", "external", "none"]
    way = "raw" if plain else draw(st.sampled_from(ways))
    if way.startswith("raw"):
        size = count * 4 - (3 if way == "raw-short" else 0)
        proto.raw_data = np.random.default_rng(count).bytes(max(size, 0))
    elif way == "float_data":
        proto.float_data.extend([0.5] * draw(st.integers(0, count + 1)))
    elif way == "string":
        proto.string_data.extend([b"x"] * count)
    elif way == "external":
        proto.data_location = TensorProto.EXTERNAL
        where = draw(st.sampled_from(["w.bin", "../w.bin", "/etc/passwd", "a\x00b", "", "sub/w"]))
        entry = proto.external_data.add()
        entry.key, entry.value = "location", where
    return proto


def _attribute(st: Any, draw: Any, name: str, tensor: Any) -> Any:
    from onnx import helper

    kind = draw(st.sampled_from(["int", "float", "ints", "floats", "string", "tensor"]))
    values = {
        "int": draw(st.integers(-3, 20)),
        "float": draw(st.floats(allow_nan=True, allow_infinity=True, width=32)),
        "ints": draw(st.lists(st.integers(-2, 5), max_size=5)),
        "floats": draw(st.lists(st.floats(width=32, allow_nan=False), max_size=3)),
        "string": draw(st.sampled_from(["", "abc", "\u00b2"])),
        "tensor": tensor,
    }
    from onnx import AttributeProto

    attr_type = {"ints": AttributeProto.INTS, "floats": AttributeProto.FLOATS}.get(kind)
    return helper.make_attribute(name, values[kind], attr_type=attr_type)


def _graph(st: Any, draw: Any) -> Any:
    from onnx import helper

    names = ["x", ""] + [f"w{i}" for i in range(4)]
    inits = [_tensor_proto(st, draw, f"w{i}") for i in range(draw(st.integers(0, 4)))]
    nodes = []
    for i in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(_OPS))
        if draw(st.booleans()):  # data first, then constants: the usual layout
            inputs = ["x" if i == 0 else names[-1], *draw(st.lists(st.sampled_from(names[2:6])))]
        else:
            inputs = draw(st.lists(st.sampled_from(names), max_size=4))
        outputs = [f"t{i}"] if draw(st.integers(0, 5)) else []
        node = helper.make_node(op, inputs, outputs, name=draw(st.sampled_from(["", f"n{i}"])))
        for attr in draw(st.lists(st.sampled_from(_ATTRS), max_size=2, unique=True)):
            node.attribute.append(_attribute(st, draw, attr, _tensor_proto(st, draw, "v")))
        if draw(st.integers(0, 3)) == 0:
            prop = node.metadata_props.add()
            prop.key = "pkg.torch.onnx.name_scopes"
            prop.value = draw(st.sampled_from(["['', 'fc']", "[[[", "['a',", "(1,)", "['a' 'b']"]))
        nodes.append(node)
        names.extend(outputs)
    graph = helper.make_graph(nodes, "g", [], [], inits)
    return helper.make_model(graph)


def _read_onnx_both_ways(model: Any, in_file: bool) -> str:
    if not in_file:
        return outcome(lambda: read_weights(model))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(model.SerializeToString())
        return outcome(lambda: read_weights(path))


# ---------------------------------------------------------------------- state dicts
_KINDS: tuple[str, ...] = ("expand", "huge", "sparse", "csr", "meta", "int", "f8", "bf16")
_KINDS += ("numpy", "big")
_KINDS += ("str", "object", "list", "scalar", "none", "strided", "complex", "empty", "nested")


def _plain(value: object) -> bool:
    """A dense contiguous float32 tensor (not yet changed into something else)."""
    return (
        isinstance(value, torch.Tensor)
        and not value.is_nested
        and value.layout == torch.strided
        and not value.is_meta
        and value.dtype == torch.float32
        and value.is_contiguous()
        and value.numel() > 0
    )


def _changed(kind: str, base: torch.Tensor) -> Any:
    """``base`` turned into a value of ``kind`` (same shape where the kind allows)."""
    shape = tuple(base.shape)
    values: dict[str, Callable[[], Any]] = {
        "expand": lambda: torch.zeros(1).expand(*shape),
        "huge": lambda: torch.zeros(1).expand(*(n * 1000 for n in shape)),
        "sparse": lambda: base.to_sparse(),
        "csr": lambda: base.reshape(shape[0], -1).to_sparse_csr(),
        "meta": lambda: torch.empty(*shape, device="meta"),
        "int": lambda: base.to(torch.int64),
        "f8": lambda: base.to(torch.float8_e4m3fn),
        "bf16": lambda: base.to(torch.bfloat16),
        "numpy": lambda: base.numpy(),
        "big": lambda: base.numpy().astype(">f4"),
        "str": lambda: np.array(["a"] * base.numel()).reshape(shape),
        "object": lambda: np.array([None, 1], dtype=object),
        "list": lambda: base.tolist(),
        "scalar": lambda: 1.5,
        "none": lambda: None,
        "strided": lambda: torch.zeros(2000).as_strided((1000, 1000), (1, 1)),
        "complex": lambda: base.to(torch.complex64),
        "empty": lambda: torch.zeros(0, *shape[1:]),
        "nested": lambda: torch.nested.nested_tensor([base, base[:1]]),
    }
    return values[kind]()


def _key(st: Any, draw: Any) -> Any:
    kind = draw(st.sampled_from(["name"] * 8 + ["int", "deep", "weird"]))
    if kind == "int":
        return draw(st.integers())
    if kind == "deep":
        key: Any = ()
        for _ in range(draw(st.sampled_from([1, 5, 1000, 1200]))):
            key = (key,)
        return key
    if kind == "weird":
        return draw(st.sampled_from(["", ".", "..weight", "a.in_proj_weight", "x.q_proj_weight"]))
    prefix = draw(st.sampled_from(["fc", "conv", "bn", "attn", "a.b", ""]))
    leaf = draw(st.sampled_from(["weight", "bias", "running_mean", "in_proj_bias", "other"]))
    return f"{prefix}.{leaf}" if prefix else leaf


def _state_dict(st: Any, draw: Any) -> dict[Any, Any]:
    """A readable MLP's state dict, then 0-3 of its values or keys corrupted."""
    widths = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    state: dict[Any, Any] = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        state[f"l{i}.weight"] = torch.randn(n_out, n_in)
        if draw(st.booleans()):
            state[f"l{i}.bias"] = torch.randn(n_out)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(state, key=str)))
        kind = draw(st.sampled_from((*_KINDS, "key")))
        if kind == "key":
            state[_key(st, draw)] = state.pop(key)
            continue
        value = state[key]
        if kind in ("huge", "strided") and str(key).endswith(".weight"):
            state.pop(str(key).replace(".weight", ".bias"), None)  # its shape changes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state[key] = _changed(kind, value) if _plain(value) else value
    return state


def _read_state_dict_ways(state: dict[Any, Any], way: str) -> str:
    if way == "memory":
        return outcome(lambda: read_weights(state))
    with tempfile.TemporaryDirectory() as folder:
        if way == "npz" and all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()
        ):
            path = Path(folder) / "w.npz"
            np.savez(path, **state)
        else:
            path = Path(folder) / "w.pt"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    torch.save(state, path)
            except Exception:  # torch cannot save it (meta, lists of odd things): in memory
                return outcome(lambda: read_weights(state))
        return outcome(lambda: read_weights(path))


# ---------------------------------------------------------------------- mutants
@functools.lru_cache(maxsize=1)
def base_files() -> dict[str, bytes]:
    """A small CNN exported by torch (ONNX, dynamo exporter) and saved as a checkpoint."""
    from torch import nn

    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)
    ).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cnn.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs: dict[str, Any] = {"dynamo": True, "optimize": False, "external_data": False}
            with open(os.devnull, "w") as quiet, _redirect(quiet):
                torch.onnx.export(cnn, (torch.randn(1, 1, 8, 8),), str(path), **kwargs)
        onnx_bytes = path.read_bytes()
    buffer = io.BytesIO()
    torch.save(cnn.state_dict(), buffer)
    return {".onnx": onnx_bytes, ".pt": buffer.getvalue()}


def _redirect(stream: Any) -> Any:
    import contextlib

    return contextlib.redirect_stdout(stream)


def _mutant(st: Any, draw: Any, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "flip", "cut", "splice", "repeat", "zero"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        width = draw(st.integers(1, 64))
        if kind == "flip" and out:
            out[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            out = out[:at] if draw(st.booleans()) else out[:at] + out[at + width :]
        elif kind == "splice":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "repeat":
            out[at:at] = out[at : at + width] * draw(st.integers(2, 50))
        else:
            out[at : at + width] = bytes(len(out[at : at + width]))
    return bytes(out)


def _read_mutant(data: bytes, suffix: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"mutant{suffix}"
        path.write_bytes(data)
        return outcome(lambda: read_weights(path))


# ---------------------------------------------------------------------- the families
def strategies() -> dict[str, Any]:
    """One hypothesis strategy per family; each draws a zero-argument check -> outcome."""
    from hypothesis import strategies as st

    @st.composite
    def onnx_case(draw: Any) -> Callable[[], str]:
        model, in_file = _graph(st, draw), draw(st.booleans())
        return lambda: _read_onnx_both_ways(model, in_file)

    @st.composite
    def state_case(draw: Any) -> Callable[[], str]:
        state = _state_dict(st, draw)
        way = draw(st.sampled_from(["memory", "pt", "npz"]))
        return lambda: _read_state_dict_ways(state, way)

    @st.composite
    def mutant_case(draw: Any) -> Callable[[], str]:
        suffix = draw(st.sampled_from([".onnx", ".onnx", ".pt"]))
        data = _mutant(st, draw, base_files()[suffix])
        return lambda: _read_mutant(data, suffix)

    return {"onnx": onnx_case(), "state_dict": state_case(), "mutant": mutant_case()}


FAMILIES = ("onnx", "state_dict", "mutant")


def run(family: str, examples: int, seed: int) -> tuple[Counter[str], float]:
    """Outcomes of ``examples`` drawn cases of ``family`` (escapes counted by site)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hyp_seed

    counts: Counter[str] = Counter()

    @hyp_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategies()[family])
    def body(case: Callable[[], str]) -> None:
        try:
            counts[case()] += 1
        except Escaped as exc:
            counts[f"escaped: {exc}"] += 1

    start = time.perf_counter()
    body()
    return counts, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="cases per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    escaped = 0
    for family in args.families:
        counts, seconds = run(family, args.examples, args.seed)
        total = sum(counts.values())
        print(f"{family}: {total} cases in {seconds:.1f} s")
        for name, count in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"  {count:6d}  {name}")
            escaped += count if name.startswith("escaped") else 0
    print(f"escaped: {escaped}")
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
