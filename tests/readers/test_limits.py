"""Readers refuse, before allocating, what a file does not hold; odd tensor kinds are refused
or converted; metadata is parsed in bounded time."""

from __future__ import annotations

import io
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

from sne_plugin import SNEError, read_weights
from sne_plugin.weights import DEFAULT_MAX_PARAMETERS, parameter_limit


def _pt(path: Path, tensor: torch.Tensor) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nested / quantized tensors warn on creation
        torch.save({"fc.weight": tensor, "fc.bias": torch.zeros(2)}, path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: torch.zeros(1).expand(10**6, 10**6),
            r"shows 1,000,000,000,000 elements but its storage holds 1 \(a stride-0",
        ),
        (lambda: torch.zeros(1).expand(2**14, 2**14), r"stride-0 or overlapping view"),
        (
            lambda: torch.zeros(2000).as_strided((1000, 1000), (1, 1)),
            r"shows 1,000,000 elements but its storage holds 2,000",
        ),
        (lambda: torch.ones(2, 3).to_sparse(), r"got a sparse_coo \(not strided\) tensor"),
        (lambda: torch.ones(2, 3).to_sparse_csr(), r"got a sparse_csr \(not strided\) tensor"),
        (lambda: torch.empty(2, 3, device="meta"), r"got a meta \(no data\) tensor"),
        (
            lambda: torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(1, 3)]),
            r"got a nested tensor",
        ),
        (
            lambda: torch.quantize_per_tensor(torch.ones(2, 3), 0.1, 0, torch.qint8),
            r"got a quantized \(call \.dequantize\(\)\) tensor",
        ),
        (lambda: torch.ones(2, 3, dtype=torch.complex64), r"expected a real-valued weight"),
    ],
)
def test_bad_tensors_in_a_checkpoint_are_refused_before_allocation(
    tmp_path: Path, make, message: str
) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensor = make()
    path = _pt(tmp_path / "evil.pt", tensor)
    start = time.perf_counter()
    with pytest.raises(SNEError, match=message) as info:
        read_weights(path)
    assert time.perf_counter() - start < 5.0
    assert "evil.pt" in str(info.value) and "'fc'" in str(info.value)
    with pytest.raises(SNEError, match=message):  # the same in memory
        read_weights({"fc.weight": tensor})


def test_a_stride0_parameter_of_a_module_is_refused_before_it_is_copied() -> None:
    layer = nn.Linear(10**6, 10**6, device="meta")
    layer.weight = nn.Parameter(torch.zeros(1).expand(10**6, 10**6), requires_grad=False)
    layer.bias = nn.Parameter(torch.zeros(10**6))
    with pytest.raises(SNEError, match=r"<Linear module>: layer '<root>'.*storage holds 1"):
        read_weights(layer)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_float8_is_converted_to_float32(tmp_path: Path, dtype: torch.dtype) -> None:
    values = torch.tensor([[0.5, -1.0, 2.0], [0.25, 4.0, -0.5]])
    net = read_weights(_pt(tmp_path / "f8.pt", values.to(dtype)))
    assert net.layers[0].weight.dtype == torch.float32
    torch.testing.assert_close(net.layers[0].weight, values)
    assert net.is_finite()


def test_big_endian_npz_is_converted(tmp_path: Path) -> None:
    weight = np.arange(6, dtype=">f4").reshape(2, 3)
    np.savez(tmp_path / "be.npz", **{"fc.weight": weight, "fc.bias": np.ones(2, ">f8")})
    net = read_weights(tmp_path / "be.npz")
    np.testing.assert_array_equal(net.layers[0].weight.numpy(), weight.astype("<f4"))
    assert net.layers[0].bias is not None and net.layers[0].bias.tolist() == [1.0, 1.0]


def test_a_broadcast_numpy_view_is_refused() -> None:
    view = np.broadcast_to(np.zeros(1, np.float32), (10**5, 10**5))
    with pytest.raises(SNEError, match=r"layer 'fc'.*stride-0 view"):
        read_weights({"fc.weight": view})


def test_deflated_zeros_are_refused_by_the_expansion_cap(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "zeros.npz", **{"fc.weight": np.zeros((4000, 4000), "f4")})
    size = (tmp_path / "zeros.npz").stat().st_size
    assert size < 200_000  # 64 MB of zeros
    with pytest.raises(SNEError, match=r"zeros\.npz: this \.npz archive .* cap of 100x"):
        read_weights(tmp_path / "zeros.npz")
    # the same for a torch checkpoint whose records are deflated
    torch.save({"fc.weight": torch.zeros(4000, 4000)}, tmp_path / "plain.pt")
    with (
        zipfile.ZipFile(tmp_path / "plain.pt") as src,
        zipfile.ZipFile(tmp_path / "zeros.pt", "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(SNEError, match=r"zeros\.pt: this torch checkpoint .* over the cap"):
        read_weights(tmp_path / "zeros.pt")
    read_weights(tmp_path / "plain.pt")  # stored, not deflated: its size justifies it


def test_an_npy_header_that_lies_about_its_shape_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ones((2, 3), np.float32))
    forged = buffer.getvalue().replace(b"(2, 3)", b"(9999, 3)")
    with zipfile.ZipFile(tmp_path / "forged.npz", "w") as archive:
        archive.writestr("fc.weight.npy", forged)
    with pytest.raises(SNEError, match=r"forged\.npz: array 'fc\.weight' declares shape"):
        read_weights(tmp_path / "forged.npz")
    huge = buffer.getvalue().replace(b"(2, 3)", b"(99999999999, 3)")
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("fc.weight.npy", huge)
    with pytest.raises(SNEError, match=r"'fc\.weight' declares .* over the cap max_parameters="):
        read_weights(tmp_path / "huge.npz")


def test_the_parameter_cap_is_named_and_can_be_raised(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.ones((50, 40), np.float32)})
    with pytest.raises(SNEError, match=r"over the cap max_parameters=1,000; .*raise it"):
        read_weights(tmp_path / "w.npz", max_parameters=1000)
    assert read_weights(tmp_path / "w.npz", max_parameters=2000).num_params == 2000
    pairs = [np.ones((30, 30)), np.ones((30, 30))]  # each tensor under the cap, the net over
    with pytest.raises(SNEError, match=r"the network holds 1,800 parameters, over the cap"):
        read_weights(pairs, max_parameters=1000)
    with parameter_limit(5000):
        assert read_weights(pairs).num_params == 1800
    with pytest.raises(SNEError, match=r"max_parameters must be a positive int"):
        read_weights(pairs, max_parameters=0)
    assert DEFAULT_MAX_PARAMETERS == 50_000_000


def test_a_deeply_nested_key_gives_an_error_not_a_recursion_error() -> None:
    key: tuple[object, ...] = ()
    for _ in range(1000):
        key = (key,)
    with pytest.raises(SNEError, match=r"expected a state dict with str keys, got key \(\(\(\("):
        read_weights({key: np.ones((2, 2))})


def _onnx_with_metadata(value: str) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((3, 2), np.float32), "val_1")
    node = helper.make_node("Gemm", ["x", "val_1"], ["y"], name="node_gemm", transB=1)
    prop = node.metadata_props.add()
    prop.key, prop.value = "pkg.torch.onnx.name_scopes", value
    return helper.make_model(helper.make_graph([node], "g", [], [], [weight]))


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("['', 'encoder.fc']", "''"),
        ("['', 'encoder.fc', 'encoder.fc.gemm']", "encoder.fc"),
        ("[" * 100_000, "node_gemm"),
        ("['a', " * 2_000_000 + "]", "node_gemm"),  # 12 MB: over the 64 KiB limit, ignored
        ("__import__('os').system('true')", "node_gemm"),
        ("[1, 2, 3]", "node_gemm"),
    ],
)
def test_onnx_metadata_is_parsed_in_bounded_time(value: str, name: str) -> None:
    model = _onnx_with_metadata(value)
    start = time.perf_counter()
    net = read_weights(model)
    assert time.perf_counter() - start < 2.0
    expected = "node_gemm" if name == "''" else name  # the root scope falls back to the node
    assert net.layers[0].name == expected
