"""Hand-built ONNX graphs: QDQ, Constant nodes, Gemm variants, sharing, external data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from sne_plugin.errors import SNEError
from sne_plugin.readers import read_weights
from sne_plugin.weights import LayerKind

RNG = np.random.default_rng(0)


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _model(nodes, inits, inputs=("x",), output="y"):
    vin = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in inputs]
    vout = [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)]
    inits = [numpy_helper.from_array(array, name) for name, array in inits.items()]
    return helper.make_model(helper.make_graph(nodes, "g", vin, vout, inits))


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_trans_b(trans_b: int) -> None:
    w, b = _f32(3, 5), _f32(3)
    stored = w if trans_b else w.T
    node = helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], transB=trans_b)
    net = read_weights(_model([node], {"fc.weight": stored, "fc.bias": b}))
    np.testing.assert_array_equal(net.layers[0].weight.numpy(), w)
    np.testing.assert_array_equal(net.layers[0].bias.numpy(), b)
    assert net.layers[0].name == "fc" and net.is_chain


def test_gemm_alpha_beta_and_trans_a() -> None:
    w, b = _f32(3, 5), _f32(3)
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transA=1, transB=1, alpha=2.0, beta=0.5)
    layer = read_weights(_model([node], {"w": w, "b": b})).layers[0]
    np.testing.assert_allclose(layer.weight.numpy(), 2 * w)
    np.testing.assert_allclose(layer.bias.numpy(), 0.5 * b)


def test_matmul_add_is_one_dense_layer() -> None:
    w, b = _f32(4, 6), _f32(6)  # (in, out) as ONNX stores it
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Add", ["b", "h"], ["y"]),
    ]
    net = read_weights(_model(nodes, {"w": w, "b": b}))
    assert net.spec.layers[0].weight_shape == (6, 4)
    np.testing.assert_array_equal(net.layers[0].weight.numpy(), w.T)
    np.testing.assert_array_equal(net.layers[0].bias.numpy(), b)


def test_constant_node_weights() -> None:
    w, b = _f32(2, 3, 3, 3), _f32(2)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
        helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(b)),
        helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv"),
    ]
    layer = read_weights(_model(nodes, {})).layers[0]
    assert layer.kind is LayerKind.CONV2D and layer.name == "w"  # the Constant output
    np.testing.assert_array_equal(layer.weight.numpy(), w)


def _qdq(axis: int | None) -> tuple[onnx.ModelProto, np.ndarray]:
    q = RNG.integers(-128, 127, size=(4, 3), dtype=np.int8)
    scale = np.array([0.5, 0.25, 0.1, 2.0], np.float32) if axis is not None else np.float32(0.05)
    zero = np.array([1, -2, 0, 3], np.int8) if axis is not None else np.int8(4)
    shape = (4, 1) if axis is not None else ()
    expected = (q.astype(np.float32) - np.reshape(zero, shape)) * np.reshape(scale, shape)
    kwargs = {} if axis is None else {"axis": axis}
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"], **kwargs),
        helper.make_node("Gemm", ["x", "w"], ["y"], transB=1),
    ]
    inits = {"wq": q, "s": np.asarray(scale), "z": np.asarray(zero)}
    return _model(nodes, inits), expected


@pytest.mark.parametrize("axis", [None, 0])
def test_qdq_weights_are_dequantized(axis: int | None) -> None:
    model, expected = _qdq(axis)
    layer = read_weights(model).layers[0]
    assert layer.name == "wq"
    np.testing.assert_allclose(layer.weight.numpy(), expected, rtol=1e-6)


def test_shared_initializer_is_read_per_use_and_named_by_node() -> None:
    w = _f32(4, 4)
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["h"], transB=1, name="/fc1/Gemm"),
        helper.make_node("Gemm", ["h", "w"], ["y"], transB=1, name="/fc2/Gemm"),
    ]
    net = read_weights(_model(nodes, {"w": w}))
    assert [layer.name for layer in net] == ["fc1", "fc2"]
    assert all(np.array_equal(layer.weight.numpy(), w) for layer in net)


def test_integer_initializers_are_ignored_and_residual_is_not_a_chain() -> None:
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Gemm", ["r", "w"], ["h"], transB=1),
        helper.make_node("Add", ["r", "h"], ["y"]),
    ]
    net = read_weights(_model(nodes, {"shape": np.array([1, 4], np.int64), "w": _f32(4, 4)}))
    assert len(net) == 1 and not net.is_chain


def test_conv_transpose_grouped_bias() -> None:
    w, b = _f32(4, 3, 2, 2), _f32(6)  # (in, out/groups, k, k) with 2 groups
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=2)
    layer = read_weights(_model([node], {"w": w, "b": b})).layers[0]
    assert layer.kind is LayerKind.CONV_TRANSPOSE2D and layer.spec.bias_shape == (6,)


def test_norm_ops_are_norm_layers() -> None:
    nodes = [
        helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["h"]),
        helper.make_node("LayerNormalization", ["h", "g2"], ["y"]),
    ]
    inits = {"g": _f32(3), "b": _f32(3), "m": _f32(3), "v": np.ones(3, np.float32), "g2": _f32(3)}
    net = read_weights(_model(nodes, inits))
    assert [(s.kind, s.bias_shape) for s in net.spec.layers] == [
        (LayerKind.NORM, (3,)),
        (LayerKind.NORM, None),
    ]


def test_unreadable_op_strict_and_not_strict() -> None:
    nodes = [
        helper.make_node("Add", ["x", "pos"], ["h"], name="add_pos"),
        helper.make_node("Gemm", ["h", "w"], ["y"], transB=1),
    ]
    model = _model(nodes, {"pos": _f32(5, 4), "w": _f32(2, 4)})
    with pytest.raises(SNEError, match=r"cannot read .*'add_pos' \(ONNX Add of 'pos'\)"):
        read_weights(model)
    with pytest.warns(UserWarning, match="skipped unreadable parameters of 'add_pos'"):
        assert len(read_weights(model, strict=False)) == 1


def _save_external(tmp_path: Path) -> Path:
    model = _model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], {"w": _f32(3, 300)})
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="ext.data", size_threshold=0
    )
    return path


def test_external_data_inside_folder_is_read(tmp_path: Path) -> None:
    path = _save_external(tmp_path)
    assert (tmp_path / "ext.data").exists()
    assert read_weights(path).spec.layers[0].weight_shape == (3, 300)


@pytest.mark.parametrize("location", ["../outside.data", "/etc/passwd", "sub/../../x.data"])
def test_external_data_outside_folder_is_refused(tmp_path: Path, location: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    path = _save_external(folder)
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    path.write_bytes(model.SerializeToString())
    with pytest.raises(
        SNEError, match=r"refers to external data at .*expected a relative path inside"
    ):
        read_weights(path)


def test_missing_external_data_file(tmp_path: Path) -> None:
    path = _save_external(tmp_path)
    (tmp_path / "ext.data").unlink()
    with pytest.raises(SNEError, match=r"ext.onnx: could not load the model's external data"):
        read_weights(path)


def test_dynamo_name_scopes_name_shared_weights() -> None:
    node1 = helper.make_node("LayerNormalization", ["x", "g"], ["h"])
    node2 = helper.make_node("LayerNormalization", ["h", "g"], ["y"])
    for node, scope in ((node1, "enc.norm1"), (node2, "enc.norm2")):
        prop = node.metadata_props.add()
        prop.key, prop.value = "pkg.torch.onnx.name_scopes", str(["", "enc", scope, "layer_norm"])
    net = read_weights(_model([node1, node2], {"g": _f32(4)}))
    assert [layer.name for layer in net] == ["enc.norm1", "enc.norm2"]


def test_values_arrive_as_torch_tensors() -> None:
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    layer = read_weights(_model([node], {"w": _f32(2, 2).astype(np.float16)})).layers[0]
    assert isinstance(layer.weight, torch.Tensor) and layer.weight.dtype == torch.float16


def test_two_outputs_are_not_a_chain() -> None:
    model = _model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], {"w": _f32(2, 2)})
    model.graph.output.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, None))
    assert not read_weights(model).is_chain
