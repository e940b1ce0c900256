"""Malformed ONNX graphs: each site the reader touches ends in an SNEError naming the node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from sne_plugin import SNEError, read_weights

W = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
Q = numpy_helper.from_array(np.ones((3, 2), np.int8), "q")


def _model(*nodes: Any, inits: tuple[Any, ...] = (W,)) -> Any:
    return helper.make_model(helper.make_graph(list(nodes), "g", [], [], list(inits)))


def _node(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> Any:
    return helper.make_node(op, inputs, outputs, name="bad", **attrs)


def _attr(node: Any, name: str, value: Any, kind: int | None = None) -> Any:
    node.attribute.append(helper.make_attribute(name, value, attr_type=kind))
    return node


STRINGS = helper.make_tensor("s", TensorProto.STRING, [2], [b"a", b"b"])


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            _model(_attr(_node("Gemm", ["x", "w"], ["y"]), "alpha", "big")),
            r"node 'bad' \(Gemm\): attribute 'alpha': expected a float, got STRING",
        ),
        (
            _model(
                _attr(_node("Gemm", ["x", "w", "b"], ["y"]), "beta", [1, 2], AttributeProto.INTS),
                inits=(W, numpy_helper.from_array(np.ones(2, np.float32), "b")),
            ),
            r"node 'bad' \(Gemm\): attribute 'beta': expected a float, got INTS",
        ),
        (
            _model(_attr(_node("Gemm", ["x", "w"], ["y"]), "alpha", float("nan"))),
            r"attribute 'alpha': expected a finite float, got nan",
        ),
        (
            _model(_attr(_node("Gemm", ["x", "w"], ["y"]), "transB", 1.5)),
            r"attribute 'transB': expected an int, got FLOAT",
        ),
        (
            _model(
                _attr(_node("Conv", ["x", "w4"], ["y"]), "group", "two"),
                inits=(numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w4"),),
            ),
            r"node 'bad' \(Conv\): attribute 'group': expected an int, got STRING",
        ),
        (
            _model(_attr(_node("Gather", ["w", "i"], ["y"]), "axis", "0")),
            r"node 'bad' \(Gather\): attribute 'axis': expected an int, got STRING",
        ),
        (
            _model(_node("Gather", ["w"], ["y"])),
            r"node 'bad' \(Gather\): expected inputs \(data, indices\), got no indices",
        ),
        (
            _model(_node("Cast", ["w"], ["c"]), _node("Gemm", ["x", "c"], ["y"])),
            r"node 'bad' \(Cast\): expected the attribute 'to'",
        ),
        (
            _model(_node("Cast", ["w"], ["c"], to=999)),
            r"node 'bad' \(Cast\): attribute 'to': expected an ONNX data type, got 999",
        ),
        (
            _model(_node("DequantizeLinear", ["q"], ["d"]), inits=(Q,)),
            r"node 'bad' \(DequantizeLinear\): expected inputs \(x, scale\[, zero_point\]\)",
        ),
        (
            _model(
                _node("DequantizeLinear", ["q", "sc"], ["d"], axis=0),
                inits=(Q, numpy_helper.from_array(np.ones(5, np.float32), "sc")),
            ),
            r"\(DequantizeLinear\): expected 5 values along axis 0 .*got 3",
        ),
        (
            _model(_node("Constant", [], [], value=W)),
            r"node 'bad' \(Constant\): expected an output, got none",
        ),
        (
            _model(_node("Identity", ["w"], [])),
            r"node 'bad' \(Identity\): expected a first input and an output",
        ),
        (
            _model(_node("Transpose", ["w"], ["t"], perm=[0, 0])),
            r"node 'bad' \(Transpose\): attribute 'perm': expected a permutation of 0\.\.1",
        ),
        (
            _model(_node("Transpose", ["w"], ["t"], perm=[5, 1, 2])),
            r"attribute 'perm': expected a permutation of 0\.\.1, got \[5, 1, 2\]",
        ),
    ],
)
def test_malformed_nodes_name_the_node(model: Any, message: str) -> None:
    with pytest.raises(SNEError, match=message):
        read_weights(model)


def test_a_gemm_without_outputs_or_names_still_reads() -> None:
    node = helper.make_node("Gemm", ["x", "w"], [], transB=1)
    net = read_weights(_model(node))
    assert net.layers[0].spec.weight_shape == (3, 2)


def test_a_string_initializer_is_not_a_weight() -> None:
    model = _model(_node("Gemm", ["x", "s"], ["y"]), _node("Gemm", ["y", "w"], ["z"], transB=1))
    model.graph.initializer.append(STRINGS)
    net = read_weights(model)  # the STRING input is skipped, the real Gemm read
    assert [layer.spec.weight_shape for layer in net] == [(3, 2)]
    cast = _model(_node("Cast", ["s"], ["c"], to=TensorProto.FLOAT), inits=(STRINGS, W))
    with pytest.raises(SNEError, match=r"expected a network with at least one readable layer"):
        read_weights(cast)  # a Cast of strings is no constant weight: nothing left to read


def test_a_nul_byte_in_an_external_location_is_refused(tmp_path: Path) -> None:
    weight = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "w\x00.bin"
    path = tmp_path / "nul.onnx"
    path.write_bytes(_model(_node("Gemm", ["x", "w"], ["y"]), inits=(weight,)).SerializeToString())
    with pytest.raises(SNEError, match=r"nul\.onnx: tensor 'w' refers to external data at .*NUL"):
        read_weights(path)


def test_external_data_of_an_in_memory_model_is_not_read_from_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "w.bin").write_bytes(np.ones(6, np.float32).tobytes())
    monkeypatch.chdir(tmp_path)  # the file sits in the current directory, on purpose
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 2])
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "w.bin"
    model = _model(_node("Gemm", ["x", "w"], ["y"]), inits=(weight,))
    with pytest.raises(SNEError, match=r"tensor 'w' keeps its data in an external file"):
        read_weights(model)
