"""Read weights from an ONNX model (an ``onnx.ModelProto`` or a path to a ``.onnx`` file).

What is read, in the graph's node order (topological by the ONNX spec):

* ``Conv``/``ConvTranspose`` (kind from the weight's dims), ``Gemm`` (``transB`` 0 or 1,
  ``alpha``/``beta`` applied; ``transA`` only moves the data), ``MatMul`` whose second
  input is a 2-d constant (the weight is stored ``(in, out)`` and is transposed to torch's
  ``(out, in)``), with the bias taken from an ``Add`` of a 1-d constant that is the
  MatMul's only consumer; ``BatchNormalization`` (scale and B; with ``canonical=True`` one
  that alone takes a dense or conv layer's output is folded into it with its running
  statistics and epsilon), ``LayerNormalization``, ``InstanceNormalization``,
  ``GroupNormalization`` and ``RMSNormalization`` as norms; ``Gather`` from a 2-d float
  constant as an embedding (a parameter table read at constant indices, BERT's positions,
  whole too; Swin's relative-position bias table as ``attention_bias``). Dense layers
  inside an ``nn.MultiheadAttention`` (dynamo exports record the module class) are
  attention layers.
* Bare parameters (:mod:`._families`): a parameter that reaches another op (an ``Add``,
  ``Mul``, ``Concat``) is read as a layer of its own kind when its name says which
  (``cls_token``, ``position_embeddings``, ``layer_scale_parameter``...), placed before
  the first layer of its module (:mod:`._arrange`). A dynamo export's optimizer may fold it
  into a new constant: one only expanded or reshaped (a class token expanded to the batch)
  is read; one computed otherwise (a position table sliced to the traced length) is
  unreadable, the parameter itself being absent from the file.
* A 2-d weight equal to one read before from another tensor, as stored or transposed
  (GPT-2's head tied to its token table), is read once; ``meta["tied"]`` names the others.
* Constants are initializers, ``Constant`` nodes, and the outputs of ``Identity``,
  ``Cast``, ``Transpose`` and ``DequantizeLinear`` (QDQ weights, per-tensor or per-axis
  scale and zero point) applied to constants. Integer constants (shapes, axes) are
  never weights.
* Any other op that uses a *parameter* not read so (``PRelu``'s slope, a factor of a name
  no library gives layer scales) is unreadable: an ``SNEError`` under ``strict``, else a
  warning. A parameter is followed through ops that
  only move or reshape it (``Expand``, ``Reshape``, ``Tile``, ``Slice`` ...) to the op that
  uses it, so a token expanded to the batch and concatenated is caught at the ``Concat``.
  Which constants are parameters: dynamo exports record it (the exported program's graph
  signature, and ``folded_from`` for constants the optimizer computed), so buffers (masks,
  running statistics) and constants computed from them alone are never parameters. Legacy
  exports record nothing: there a float initializer (not a ``Constant`` node, which the
  exporter writes) of more than one element is a parameter unless its values look like a
  buffer's: only 0, 1 and +-inf or the float type's extremes
  (attention masks, fills of zeros or ones; a parameter that still holds only such values,
  say a class token initialised to zeros, is taken for a buffer).
* Names: the initializer's name without ``.weight`` when it is a real name used by one
  layer; otherwise the torch module path from ``pkg.torch.onnx.name_scopes`` (dynamo
  exports), else the node's name (legacy ``/fc1/Gemm`` gives ``fc1``).
* ``is_chain`` is True when the data path is one line: no node takes two non-constant
  inputs (a residual ``Add`` of two tensors, a ``Concat``) and no tensor feeds two nodes
  (``Shape`` reads do not count), with one graph input and one graph output.

External data is resolved against the model's folder; a ``location`` that is absolute or
leaves that folder is refused before any external file is opened.
"""

from __future__ import annotations

import ast
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sne_plugin._imports import optional_import
from sne_plugin.errors import SNEError
from sne_plugin.readers._arrange import arrange
from sne_plugin.readers._common import Skipped, finish, make_layer
from sne_plugin.readers._families import BARE_KINDS, bare_kind, bare_layer
from sne_plugin.readers.canonical import BatchNormStats, fold_batchnorms
from sne_plugin.weights import Layer, LayerKind, NetworkWeights

__all__ = ["is_onnx_model", "read_onnx"]

_CONV = {3: LayerKind.CONV1D, 4: LayerKind.CONV2D, 5: LayerKind.CONV3D}
_CONV_T = {
    3: LayerKind.CONV_TRANSPOSE1D,
    4: LayerKind.CONV_TRANSPOSE2D,
    5: LayerKind.CONV_TRANSPOSE3D,
}
_NORM_OPS = {
    "BatchNormalization",
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "RMSNormalization",
}
_FOLDABLE = {"Identity", "Cast", "Transpose", "DequantizeLinear"}
_SHAPE_READS = {"Shape", "Size"}
_NOT_WEIGHTS = {
    "Reshape",
    "Expand",
    "Slice",
    "Squeeze",
    "Unsqueeze",
    "Tile",
    "Pad",
    "Resize",
    "Upsample",
    "Clip",
    "Range",
    "ConstantOfShape",
    "QuantizeLinear",
    "Shape",
    "Size",
}
_MOVES = _NOT_WEIGHTS - _SHAPE_READS | {"Identity", "Cast", "Transpose", "DequantizeLinear"}
"""Ops that pass their first input on (moved, reshaped, cast); later inputs are settings."""
_GENERATED = re.compile(r"_?val_\d+|.*::.*|/.*|\d+|")
_SIGNATURE = "pkg.torch.export.ExportedProgram.graph_signature"
_SIGNATURE_LINE = re.compile(r"^\s*\S+: ([A-Z_]+) target='([^']*)'", re.MULTILINE)
_INPUT_KIND = "pkg.torch.export.graph_signature.InputSpec.kind"
_FOLDED_FROM = "pkg.onnxscript.optimizer.folded_from"
_MOVED_FOLD = re.compile(r"(expand|view|reshape|_unsafe_view|unsqueeze|clone|alias|detach)(_\d+)?")
"""Dynamo's names of constants the optimizer folded from ops that keep the values' order."""
_MAX_SIGNATURE = 1 << 24  # characters: one line per parameter and buffer
_MHA_CLASS = "torch.nn.modules.activation.MultiheadAttention"


def is_onnx_model(obj: object) -> bool:
    """Whether ``obj`` is an ``onnx.ModelProto`` (checked without importing onnx).

    >>> is_onnx_model("model.onnx")
    False
    """
    cls = type(obj)
    return cls.__name__ == "ModelProto" and cls.__module__.startswith("onnx")


def read_onnx(model: object, *, strict: bool = True, canonical: bool = False) -> NetworkWeights:
    """The layers of an ONNX model or ``.onnx`` file (see the module docstring).

    With ``canonical`` a ``BatchNormalization`` that alone takes a dense or conv layer's
    output is folded into it, as the exporters' default settings do
    (:mod:`sne_plugin.readers.canonical`).

    >>> import onnx, numpy as np
    >>> from onnx import helper, numpy_helper
    >>> w = numpy_helper.from_array(np.ones((3, 2), np.float32), "fc.weight")
    >>> node = helper.make_node("Gemm", ["x", "fc.weight"], ["y"], transB=1)
    >>> graph = helper.make_graph([node], "g", [], [], [w])
    >>> read_onnx(helper.make_model(graph)).layers[0].spec
    LayerSpec(kind=<LayerKind.DENSE: 'dense'>, name='fc', weight_shape=(3, 2), bias_shape=None)
    """
    proto: Any = model
    source = "<onnx.ModelProto>"
    if isinstance(model, (str, os.PathLike)):
        proto, source = _load(Path(model)), str(model)
    try:
        graph = _Graph(proto.graph, source)
        found, skipped = graph.find_layers()
        named = _named_layers(found, graph, source)
        origins = [item.origin for item in found]
        layers, batchnorms, tied = arrange(named, origins, graph.ranks(), graph.batchnorms(found))
        is_chain = graph.is_chain()
    except SNEError:
        raise
    except Exception as exc:  # a malformed graph this reader did not foresee
        raise SNEError(
            f"{source}: could not read the ONNX graph ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    meta: dict[str, object] = {"format": "onnx", "producer": proto.producer_name}
    if tied:
        meta["tied"] = tied
    net = finish(layers, skipped, source=source, strict=strict, is_chain=is_chain, meta=meta)
    return fold_batchnorms(net, batchnorms) if canonical else net


# -- loading ---------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    onnx = optional_import("onnx", extra="onnx")
    if not path.is_file():
        raise SNEError(f"{path}: expected an existing .onnx file, found none")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise SNEError(
            f"{path}: expected a valid ONNX model, but it could not be parsed "
            f"(truncated or corrupt?): {_first_line(exc)}"
        ) from None
    _check_external(model, path)
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        raise SNEError(
            f"{path}: could not load the model's external data: {_first_line(exc)}"
        ) from None
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _external_tensors(model: Any) -> list[Any]:
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors.extend(attr.t for attr in node.attribute if attr.HasField("t"))
    return [t for t in tensors if t.data_location == 1]  # TensorProto.EXTERNAL


def _check_external(model: Any, path: Path) -> None:
    folder = path.parent.resolve()
    for tensor in _external_tensors(model):
        location = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
        if not location or "\x00" in location:
            raise SNEError(
                f"{path}: tensor {tensor.name!r} refers to external data at {location!r}; "
                "expected a file name (non-empty, without NUL bytes); refusing to read it"
            )
        target = (folder / location).resolve()
        if (
            os.path.isabs(location)
            or Path(location).is_absolute()
            or not target.is_relative_to(folder)
        ):
            raise SNEError(
                f"{path}: tensor {tensor.name!r} refers to external data at {location!r}; "
                f"expected a relative path inside {str(folder)!r}; refusing to read it"
            )


# -- the graph ---------------------------------------------------------------------------------


@dataclass
class _Found:
    kind: LayerKind
    node: Any
    weight: np.ndarray
    bias: np.ndarray | None
    origin: str
    groups: int = 1
    output: str = ""  # the tensor that carries the layer's result (after a MatMul's bias Add)


_Use = tuple[str, str]
"""A parameter's name and the constant it reaches an op in (itself, or one folded from it)."""


class _Graph:
    """Constants of a graph (folded through Identity/Cast/Transpose/DequantizeLinear)."""

    def __init__(self, graph: Any, source: str) -> None:
        self.graph, self.source = graph, source
        self.numpy_helper = optional_import("onnx.numpy_helper", extra="onnx")
        self.helper = optional_import("onnx.helper", extra="onnx")
        self.protos: dict[str, Any] = {t.name: t for t in graph.initializer}
        self.arrays: dict[str, np.ndarray] = {}
        self.origin: dict[str, str] = {name: name for name in self.protos}
        self.folded: set[int] = set()
        self.consumers: dict[str, list[Any]] = {}
        self.skipped = Skipped()
        # One list of node objects, held for the reader's life: protobuf may hand out a new
        # wrapper (with a recycled id) on each access to graph.node, and ids mark nodes here.
        self.nodes: list[Any] = list(graph.node)
        self.kinds, self.folded_from = _export_records(graph)
        self.parameter_cache: dict[str, bool] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            self._guarded(node, self._fold)

    def _guarded(self, node: Any, step: Any) -> Any:
        """``step(node)``, with any failure an SNEError naming the node."""
        try:
            return step(node)
        except SNEError:
            raise
        except Exception as exc:
            raise SNEError(
                f"{self.source}, node {_node_label(node)!r} ({node.op_type}): could not be "
                f"read ({type(exc).__name__}: {_first_line(exc)})"
            ) from None

    def _fail(self, node: Any, message: str) -> SNEError:
        return SNEError(f"{self.source}, node {_node_label(node)!r} ({node.op_type}): {message}")

    # constants
    def has(self, name: str) -> bool:
        return name in self.protos or name in self.arrays

    def const(self, name: str) -> np.ndarray | None:
        if name not in self.arrays and name in self.protos:
            self.arrays[name] = self._to_array(self.protos[name])
        return self.arrays.get(name)

    def float_const(self, name: str) -> np.ndarray | None:
        value = self.const(name) if name else None
        return value if value is not None and np.issubdtype(value.dtype, np.floating) else None

    def _to_array(self, proto: Any) -> np.ndarray:
        if proto.data_location == 1:  # TensorProto.EXTERNAL, not loaded from a known folder
            raise SNEError(
                f"{self.source}: tensor {proto.name!r} keeps its data in an external file; "
                "pass the .onnx file's path, so that the data is read from its folder"
            )
        try:
            array = np.asarray(self.numpy_helper.to_array(proto))
        except Exception as exc:
            raise SNEError(
                f"{self.source}: could not read tensor {proto.name!r} "
                f"(missing external data?): {_first_line(exc)}"
            ) from None
        if array.dtype.kind in "OSU":
            return array  # STRING tensors: never weights (float_const ignores them)
        if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
            array = array.astype(np.float32)  # bfloat16, float8 ... from ml_dtypes
        return array

    def _fold(self, node: Any) -> None:
        if node.op_type == "Constant":
            self._fold_constant(node)
            return
        inputs = [name for name in node.input if name]
        if node.op_type not in _FOLDABLE or not inputs or not all(self.has(n) for n in inputs):
            return
        if not node.output or not node.input[0]:
            raise self._fail(node, "expected a first input and an output, got none")
        value = self._fold_op(node)
        if value is not None:
            self.arrays[node.output[0]] = value
            self.origin[node.output[0]] = self.origin.get(node.input[0], node.input[0])
            self.folded.add(id(node))

    def _fold_constant(self, node: Any) -> None:
        helper = self.helper
        if not node.output:
            raise self._fail(node, "expected an output, got none")
        for attr in node.attribute:
            if attr.name == "sparse_value":
                continue
            value = helper.get_attribute_value(attr)
            array = self._to_array(value) if attr.name == "value" else np.asarray(value)
            self.arrays[node.output[0]] = array
            self.origin[node.output[0]] = node.output[0]
            self.folded.add(id(node))

    def _fold_op(self, node: Any) -> np.ndarray | None:
        x = self.const(node.input[0])
        if x is None or x.dtype.kind in "OSU":
            return None
        if node.op_type == "Identity":
            return x
        if node.op_type == "Cast":
            return self._cast(node, x)
        if node.op_type == "Transpose":
            return self._transpose(node, x)
        return self._dequantize(node, x)

    def _cast(self, node: Any, x: np.ndarray) -> np.ndarray | None:
        to = _int_attr(node, "to", None, self)
        if to is None:
            raise self._fail(node, "expected the attribute 'to' (a data type), got none")
        try:
            dtype = np.dtype(self.helper.tensor_dtype_to_np_dtype(to))
        except Exception:
            raise self._fail(
                node, f"attribute 'to': expected an ONNX data type, got {to}"
            ) from None
        if dtype.kind in "OSU":
            return None  # a cast to STRING: not a weight
        return x.astype(dtype)

    def _transpose(self, node: Any, x: np.ndarray) -> np.ndarray:
        perm = _ints_attr(node, "perm", self)
        if perm and sorted(perm) != list(range(x.ndim)):
            raise self._fail(
                node, f"attribute 'perm': expected a permutation of 0..{x.ndim - 1}, got {perm}"
            )
        return np.transpose(x, perm or None)

    def _dequantize(self, node: Any, x: np.ndarray) -> np.ndarray | None:
        if len(node.input) < 2 or not node.input[1]:
            raise self._fail(node, "expected inputs (x, scale[, zero_point]), got no scale")
        scale = self.const(node.input[1])
        if scale is None or _int_attr(node, "block_size", 0, self):
            self.skipped.add(_node_label(node), "DequantizeLinear (blocked quantization)")
            return None
        zero = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axis = _int_attr(node, "axis", 1, self)
        shape = [1] * x.ndim
        if scale.size > 1:
            along = x.shape[axis] if -x.ndim <= axis < x.ndim else None
            if along != scale.size:
                raise self._fail(
                    node,
                    f"expected {scale.size} values along axis {axis} of the input (shape "
                    f"{x.shape}) to match the scale's, got {along}",
                )
            shape[axis % x.ndim] = scale.size
        if zero is not None and zero.size not in (1, scale.size):
            raise self._fail(node, f"expected a zero point of {scale.size} values, got {zero.size}")
        centred = x.astype(np.float64) - (
            0.0 if zero is None else zero.astype(np.float64).reshape(shape if zero.size > 1 else ())
        )
        return (centred * scale.astype(np.float64).reshape(shape)).astype(scale.dtype)

    # parameters and buffers
    def is_parameter(self, name: str) -> bool:
        """Whether the constant ``name`` is (or was computed from) a learned parameter."""
        if name not in self.parameter_cache:
            self.parameter_cache[name] = self._is_parameter(name)
        return self.parameter_cache[name]

    def _is_parameter(self, name: str) -> bool:
        value = self.float_const(name) if self.has(name) else None
        if value is None or value.size <= 1:
            return False
        if self.kinds:  # a dynamo export: its graph signature says
            return any(self.kinds.get(src) == "PARAMETER" for src in self._sources(name))
        if self.origin.get(name, name) not in self.protos:
            return False  # a Constant node's value: the exporter's, not a learned tensor
        return not _looks_like_buffer(value)

    def _sources(self, name: str) -> list[str]:
        origin = self.origin.get(name, name)
        return self.folded_from.get(origin) or self.folded_from.get(name) or [origin]

    # layers
    def find_layers(self) -> tuple[list[_Found], Skipped]:
        found: list[_Found] = []
        bare: dict[str, _Found] = {}  # bare parameters read, each once, by name
        used_adds: set[int] = set()
        carried: dict[str, list[_Use]] = {}  # tensor -> parameters it carries, not yet used
        for node in self.nodes:
            if id(node) in self.folded or id(node) in used_adds:
                continue
            layer = self._guarded(node, lambda n: self._layer(n, used_adds))
            if layer is not None:
                found.append(layer)
                continue
            for item in self._follow_parameters(node, carried):
                bare.setdefault(item.origin, item)
        for out in self.graph.output:
            if carried.get(out.name):
                names = [param for param, _ in carried[out.name]]
                self.skipped.add(out.name, f"graph output carrying {_listed(names)}")
        return found + list(bare.values()), self.skipped

    def _follow_parameters(self, node: Any, carried: dict[str, list[_Use]]) -> list[_Found]:
        """Pass the parameters a moving op carries on; read those any other op uses as
        bare parameters (tokens, position tables, layer scales), report the others."""
        if node.op_type in _SHAPE_READS:
            return []
        used = [self._parameters_in(name, carried) for name in node.input]
        if node.op_type in _MOVES:
            if used and used[0]:
                for out in node.output:
                    carried[out] = used[0]
            return []
        read, unread = [], []
        for param, carrier in dict.fromkeys(use for group in used for use in group):
            item = self._bare(node, param, carrier)
            if isinstance(item, _Found):
                read.append(item)
            else:
                unread.append(item)
        if unread:
            self.skipped.add(_node_label(node), f"ONNX {node.op_type} of {', '.join(unread)}")
        return read

    def _parameters_in(self, name: str, carried: dict[str, list[_Use]]) -> list[_Use]:
        """The parameters the tensor ``name`` carries, each with the constant it came in."""
        if not name:
            return []
        if not self.is_parameter(name):
            return carried.get(name, [])
        if self.kinds:  # name the parameters the constant was computed from
            sources = self._sources(name)
            return [(src, name) for src in sources if self.kinds.get(src) == "PARAMETER"]
        return [(self.origin.get(name, name), name)]

    def _bare(self, node: Any, param: str, carrier: str) -> _Found | str:
        """The bare parameter ``param`` (reaching ``node`` in the constant ``carrier``) as a
        layer of its kind, or why it cannot be read (its name quoted first)."""
        value = self.float_const(param) if param in self.protos else self._unfolded(carrier)
        if value is None:
            return (
                f"{param!r}, which the exporter's optimizer folded into {carrier!r}: the "
                "parameter itself is not in the file (export with optimize=False)"
            )
        kind = bare_kind(param.rsplit(".", 1)[-1], value.shape)
        if kind is None:
            return repr(param)
        return _Found(kind, node, value, None, param)

    def _unfolded(self, carrier: str) -> np.ndarray | None:
        """A parameter that a dynamo export's optimizer only moved (expanded to the batch,
        reshaped) into the constant ``carrier``; None when it computed anything else."""
        value = self.float_const(carrier)
        sources = [s for s in self._sources(carrier) if self.kinds.get(s) == "PARAMETER"]
        if value is None or len(sources) != 1 or not _MOVED_FOLD.fullmatch(carrier):
            return None
        while value.ndim > 1 and value.shape[0] > 1 and (value == value[:1]).all():
            value = value[:1]  # copies of the parameter along the batch
        return value

    def _layer(self, node: Any, used_adds: set[int]) -> _Found | None:
        op = node.op_type
        if op in ("Conv", "ConvTranspose"):
            return self._conv(node)
        if op == "Gemm":
            return self._gemm(node)
        if op == "MatMul":
            return self._matmul(node, used_adds)
        if op in _NORM_OPS:
            return self._norm(node)
        if op == "Gather":
            return self._gather(node)
        return None

    def _input(self, node: Any, index: int) -> np.ndarray | None:
        return self.float_const(node.input[index]) if len(node.input) > index else None

    def _conv(self, node: Any) -> _Found | None:
        weight = self._input(node, 1)
        if weight is None:
            return None
        kinds = _CONV_T if node.op_type == "ConvTranspose" else _CONV
        if weight.ndim not in kinds:
            raise SNEError(
                f"{self.source}, node {_node_label(node)!r} ({node.op_type}): expected a "
                f"weight of 3 to 5 dims, got shape {weight.shape}"
            )
        groups = _int_attr(node, "group", 1, self)
        return _Found(
            kinds[weight.ndim], node, weight, self._input(node, 2), self.origin_of(node, 1), groups
        )

    def _gemm(self, node: Any) -> _Found | None:
        b = self._input(node, 1)
        if b is None or b.ndim != 2:
            return None
        trans_b = _int_attr(node, "transB", 0, self)
        weight = (b if trans_b else b.T) * _float_attr(node, "alpha", 1.0, self)
        bias = self._input(node, 2)
        if bias is not None:
            bias = np.broadcast_to(bias, (weight.shape[0],)).copy() if bias.size == 1 else bias
            bias = bias.reshape(-1) if bias.ndim == 2 and bias.shape[0] == 1 else bias
            bias = bias * _float_attr(node, "beta", 1.0, self)
        return _Found(LayerKind.DENSE, node, weight.astype(b.dtype), bias, self.origin_of(node, 1))

    def _matmul(self, node: Any, used_adds: set[int]) -> _Found | None:
        b = self._input(node, 1)
        if b is None or b.ndim != 2:
            return None
        weight = b.T
        output = node.output[0] if node.output else ""
        bias, add = self._following_bias(output, weight.shape[0]) if output else (None, None)
        found = _Found(LayerKind.DENSE, node, weight, bias, self.origin_of(node, 1))
        if add is not None:
            used_adds.add(id(add))
            found.output = add.output[0] if add.output else ""
        return found

    def _following_bias(self, output: str, width: int) -> tuple[np.ndarray | None, Any]:
        users = self.consumers.get(output, [])
        if len(users) != 1 or users[0].op_type != "Add":
            return None, None
        add = users[0]
        other = [name for name in add.input if name != output]
        bias = self.float_const(other[0]) if len(other) == 1 else None
        if bias is None or bias.ndim != 1 or bias.shape[0] != width:
            return None, None
        return bias, add

    def _norm(self, node: Any) -> _Found | None:
        scale = self._input(node, 1)
        if scale is None:
            return None
        bias = self._input(node, 2) if node.op_type != "RMSNormalization" else None
        return _Found(LayerKind.NORM, node, scale, bias, self.origin_of(node, 1))

    def _gather(self, node: Any) -> _Found | None:
        """An embedding lookup; a parameter table read at constant indices (positions,
        a relative-position bias table's index buffer) is read whole too."""
        table = self._input(node, 0)
        axis = _int_attr(node, "axis", 0, self)
        if table is None or table.ndim != 2 or axis != 0:
            return None
        if len(node.input) < 2 or not node.input[1]:
            raise self._fail(node, "expected inputs (data, indices), got no indices")
        if self.has(node.input[1]) and not self.is_parameter(node.input[0]):
            return None
        origin = self.origin_of(node, 0)
        kind = bare_kind(origin.rsplit(".", 1)[-1], table.shape) or LayerKind.EMBEDDING
        return _Found(kind, node, table, None, origin)

    def origin_of(self, node: Any, index: int) -> str:
        name = node.input[index]
        return self.origin.get(name, name)

    def ranks(self) -> dict[str, int]:
        """Each parameter's place in the module's state dict, as far as the graph records it
        (a dynamo export's signature; else the initializers' order), by layer name."""
        names = [name for name, kind in self.kinds.items() if kind == "PARAMETER"]
        return {_clean(name): i for i, name in enumerate(names or self.protos)}

    # BatchNorm after a layer
    def batchnorms(self, found: list[_Found]) -> list[BatchNormStats]:
        """The BatchNormalization nodes that alone take a dense or conv layer's output (by
        index in ``found``: names may repeat)."""
        producers = {_output_of(item): i for i, item in enumerate(found)}
        stats = []
        for index, item in enumerate(found):
            node = item.node
            if node.op_type != "BatchNormalization" or _int_attr(node, "training_mode", 0, self):
                continue
            source = node.input[0] if node.input else ""
            mean, var = self._input(node, 3), self._input(node, 4)
            if source not in producers or len(self.consumers.get(source, [])) != 1:
                continue
            if mean is None or var is None:
                continue
            eps = _float_attr(node, "epsilon", 1e-5, self)
            stats.append(
                BatchNormStats(
                    producers[source],
                    index,
                    torch.from_numpy(mean.copy()),
                    torch.from_numpy(var.copy()),
                    eps,
                )
            )
        return stats

    # topology
    def is_chain(self) -> bool:
        static = set(self.protos) | set(self.arrays)
        uses: Counter[str] = Counter(out.name for out in self.graph.output)
        data_inputs = [i.name for i in self.graph.input if i.name not in static]
        if len(data_inputs) > 1 or len(self.graph.output) > 1:
            return False
        for node in self.nodes:
            data = [name for name in node.input if name and name not in static]
            if node.op_type in _SHAPE_READS or not data:
                static.update(node.output)
                continue
            if len(data) > 1:
                return False
            uses.update(data)
        return all(count <= 1 for count in uses.values())


def _export_records(graph: Any) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What a dynamo export records: each input's kind (PARAMETER, BUFFER ...) by name, and
    the constants each optimizer-computed constant was folded from; empty for others."""
    kinds: dict[str, str] = {}
    for prop in getattr(graph, "metadata_props", ()):
        if prop.key == _SIGNATURE and len(prop.value) <= _MAX_SIGNATURE:
            kinds.update((target, kind) for kind, target in _SIGNATURE_LINE.findall(prop.value))
    folded: dict[str, list[str]] = {}
    for value in [*graph.input, *graph.value_info]:
        for prop in getattr(value, "metadata_props", ()):
            if prop.key == _INPUT_KIND:
                kinds[value.name] = prop.value
            elif prop.key == _FOLDED_FROM:
                folded[value.name] = _string_list(prop.value)
    return kinds, folded


def _output_of(item: _Found) -> str:
    return item.output or (item.node.output[0] if item.node.output else "")


def _looks_like_buffer(value: np.ndarray) -> bool:
    """Only 0, 1, +-inf or the dtype's extremes: a mask or a fill, not a learned tensor."""
    info = np.finfo(value.dtype)
    flat = value.reshape(-1)
    return bool(np.isin(flat, [0.0, 1.0, np.inf, -np.inf, info.min, info.max]).all())


def _listed(names: list[str]) -> str:
    unique = list(dict.fromkeys(names))
    return ", ".join(repr(n) for n in unique[:4]) + (" ..." if len(unique) > 4 else "")


_FLOAT, _INT, _INTS = 1, 2, 7  # AttributeProto.AttributeType


def _attr(node: Any, name: str) -> Any | None:
    found = [a for a in node.attribute if a.name == name]
    return found[-1] if found else None


def _int_attr(node: Any, name: str, default: Any, graph: _Graph) -> Any:
    attr = _attr(node, name)
    if attr is None:
        return default
    if attr.type != _INT:
        raise graph._fail(node, f"attribute {name!r}: expected an int, got {_attr_type(attr)}")
    return int(attr.i)


def _float_attr(node: Any, name: str, default: float, graph: _Graph) -> float:
    attr = _attr(node, name)
    if attr is None:
        return default
    if attr.type not in (_FLOAT, _INT):
        raise graph._fail(node, f"attribute {name!r}: expected a float, got {_attr_type(attr)}")
    value = float(attr.f if attr.type == _FLOAT else attr.i)
    if not np.isfinite(value):
        raise graph._fail(node, f"attribute {name!r}: expected a finite float, got {value}")
    return value


def _ints_attr(node: Any, name: str, graph: _Graph) -> list[int]:
    attr = _attr(node, name)
    if attr is None:
        return []
    if attr.type != _INTS:
        raise graph._fail(node, f"attribute {name!r}: expected ints, got {_attr_type(attr)}")
    return [int(v) for v in attr.ints]


def _attr_type(attr: Any) -> str:
    names = {0: "UNDEFINED", 1: "FLOAT", 2: "INT", 3: "STRING", 4: "TENSOR", 5: "GRAPH"}
    names.update({6: "FLOATS", 7: "INTS", 8: "STRINGS", 9: "TENSORS", 10: "GRAPHS"})
    return names.get(attr.type, f"type {attr.type}")


def _node_label(node: Any) -> str:
    return _scope(node) or node.name or (node.output[0] if node.output else node.op_type)


def _metadata_list(node: Any, key: str) -> list[str]:
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == key:
            return _string_list(prop.value)
    return []


_MAX_METADATA = 1 << 16  # characters: a module path list is a few hundred
_STRING_ITEM = re.compile(r"""\s*('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")\s*(?:,|(?=\s*\Z))""")
_REST = re.compile(r"\s*\Z")


def _string_list(text: str) -> list[str]:
    """A flat list or tuple of string literals, as dynamo exports write metadata ('[]' when
    the text is anything else or longer than 64 KiB): linear time, no recursion.

    >>> _string_list("['', 'fc1']"), _string_list("[[" * 5000), _string_list("__import__('os')")
    (['', 'fc1'], [], [])
    """
    text = text.strip()
    if len(text) > _MAX_METADATA or len(text) < 2 or (text[0], text[-1]) not in _BRACKETS:
        return []
    body, pos, items = text[1:-1], 0, []
    while not _REST.match(body, pos):
        match = _STRING_ITEM.match(body, pos)
        if match is None:
            return []
        items.append(_unquote(match.group(1)))
        pos = match.end()
    return items


_BRACKETS = {("[", "]"), ("(", ")")}


def _unquote(literal: str) -> str:
    if "\\" not in literal:
        return literal[1:-1]
    try:
        value = ast.literal_eval(literal)  # one short string literal, already matched
    except (ValueError, SyntaxError):
        return literal[1:-1]
    return value if isinstance(value, str) else literal[1:-1]


def _scope(node: Any) -> str:
    """The torch module path of a dynamo-exported node ('' when unknown or the root)."""
    scopes = _metadata_list(node, "pkg.torch.onnx.name_scopes")
    return scopes[-2] if len(scopes) >= 2 else ""


def _is_tied_lookup(item: _Found) -> bool:
    """A lookup in a table named after another module (an embedding tied to the output head
    is exported under the head's name): named by the module that looks it up."""
    scope = _scope(item.node) if item.node.op_type == "Gather" else ""
    return bool(scope) and not item.origin.startswith(f"{scope}.")


def _node_path(node: Any) -> str:
    parts = [p for p in node.name.split("/") if p]
    return parts[-2] if node.name.startswith("/") and len(parts) >= 2 else ""


def _clean(name: str) -> str:
    for suffix in (".weight", "_weight", ".scale"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _named_layers(found: list[_Found], graph: _Graph, source: str) -> list[Layer]:
    shared = Counter(item.origin for item in found)
    layers = []
    for item in found:
        name = _layer_name(item, shared[item.origin] > 1)
        kind = item.kind
        if kind is LayerKind.DENSE and _MHA_CLASS in _metadata_list(
            item.node, "pkg.torch.onnx.class_hierarchy"
        ):
            kind = LayerKind.ATTENTION
        weight = torch.from_numpy(np.array(item.weight))
        if kind in BARE_KINDS:
            layers.append(bare_layer(kind, name, weight, source=source))
            continue
        bias = None if item.bias is None else torch.from_numpy(np.array(item.bias))
        layers.append(make_layer(kind, name, weight, bias, source=source, groups=item.groups))
    return layers


def _layer_name(item: _Found, shared: bool) -> str:
    real = not _GENERATED.fullmatch(item.origin)
    if real and not shared and not _is_tied_lookup(item):
        return _clean(item.origin)
    by_node = _scope(item.node) or _node_path(item.node)
    if by_node:
        return by_node
    label = item.node.name or (item.node.output[0] if item.node.output else item.node.op_type)
    return f"{_clean(item.origin)}@{label}" if real else label
