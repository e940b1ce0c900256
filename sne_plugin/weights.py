"""One typed container for "the weights of one network", taken and returned by every stage.

A network is an ordered list of :class:`Layer` from input to output. Each layer keeps its
weight in torch layout (``nn.Linear``: ``(out, in)``; ``nn.ConvNd``: ``(out, in/groups, *k)``;
``nn.ConvTransposeNd``: ``(in, out/groups, *k)``; norms: ``(C,)``; ``nn.Embedding``:
``(num, dim)``; attention projections: ``(out, in)``; bare parameters such as tokens,
position tables and relative-position bias tables: ``(rows, last dim)``; layer scales:
``(C,)``; recurrent weights: ``(gates * hidden, in)``), an optional bias and its original
name. :attr:`NetworkWeights.spec` is the shapes alone, hashable, so that networks of one
architecture share everything that depends only on shapes.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sne_plugin.errors import SNEError

__all__ = [
    "DEFAULT_MAX_PARAMETERS",
    "Layer",
    "LayerKind",
    "LayerSpec",
    "NetworkSpec",
    "NetworkWeights",
    "checked_array",
    "checked_tensor",
    "max_parameters",
    "parameter_limit",
]

DEFAULT_MAX_PARAMETERS = 50_000_000
"""The most parameters one tensor or one network may hold unless the user raises the cap
(``read_weights(..., max_parameters=N)`` or ``with parameter_limit(N):``): a file cannot make
the package allocate more than that by declaring a shape."""

_LIMIT: contextvars.ContextVar[int] = contextvars.ContextVar(
    "sne_max_parameters", default=DEFAULT_MAX_PARAMETERS
)


def max_parameters() -> int:
    """The parameter cap in force (:data:`DEFAULT_MAX_PARAMETERS` unless raised).

    >>> with parameter_limit(10**9):
    ...     max_parameters()
    1000000000
    """
    return _LIMIT.get()


@contextlib.contextmanager
def parameter_limit(limit: int | None) -> Iterator[None]:
    """Inside the block, tensors and networks may hold up to ``limit`` parameters (None: no
    change). Readers refuse larger ones before allocating them."""
    if limit is None:
        yield
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SNEError(f"max_parameters must be a positive int, but got {limit!r}")
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def _check_count(count: int, where: str, what: str) -> None:
    limit = _LIMIT.get()
    if count > limit:
        raise SNEError(
            f"{where}: {what} holds {count:,} parameters, over the cap max_parameters="
            f"{limit:,}; if the file is trusted, raise it: read_weights(..., "
            f"max_parameters=N) or `with sne_plugin.weights.parameter_limit(N):`"
        )


_FLOAT8 = tuple(
    getattr(torch, name)
    for name in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz")
    if hasattr(torch, name)
)


def checked_tensor(value: torch.Tensor, where: str, what: str = "weight") -> torch.Tensor:
    """``value`` detached, if it is a dense, strided, real tensor whose storage holds every
    element it shows; float8 becomes float32. Anything else is an SNEError naming ``where``,
    raised before any copy is made.

    >>> checked_tensor(torch.zeros(1).expand(4, 4), "demo.pt, layer 'fc'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sne_plugin.errors.SNEError: demo.pt, layer 'fc': the weight of shape (4, 4) shows 16 ...
    """
    kind = _unsupported_kind(value)
    if kind:
        shape = "" if value.is_nested else f", shape {tuple(value.shape)}"
        raise SNEError(
            f"{where}: expected a dense floating-point tensor as {what}, got a {kind} tensor "
            f"(dtype {value.dtype}{shape}); convert it to a dense float tensor first"
        )
    _check_storage(value, where, what)
    _check_count(value.numel(), where, f"the {what} of shape {tuple(value.shape)}")
    tensor = value.detach()
    if tensor.dtype in _FLOAT8:
        tensor = tensor.to(torch.float32)
    return tensor


def _unsupported_kind(value: torch.Tensor) -> str:
    if value.is_nested:
        return "nested"
    if value.layout != torch.strided:
        return f"{str(value.layout).removeprefix('torch.')} (not strided)"
    if value.is_meta or value.device.type == "meta":
        return "meta (no data)"
    if value.is_quantized:
        return "quantized (call .dequantize())"
    return ""  # complex: refused by the callers as "expected a real-valued ..."


def _check_storage(value: torch.Tensor, where: str, what: str) -> None:
    """Refuse a view that shows more elements than its storage holds (stride 0, overlaps)."""
    numel = value.numel()
    if numel == 0:
        return
    try:
        held = value.untyped_storage().nbytes() // max(value.element_size(), 1)
    except (RuntimeError, NotImplementedError):  # a tensor without accessible storage
        raise SNEError(
            f"{where}: expected a tensor with storage as {what}, got one without "
            f"(dtype {value.dtype}, shape {tuple(value.shape)})"
        ) from None
    available = held - value.storage_offset()
    reach = 1 + sum((n - 1) * abs(st) for n, st in zip(value.shape, value.stride()))
    if numel > available or reach > available:
        raise SNEError(
            f"{where}: the {what} of shape {tuple(value.shape)} shows {numel:,} elements but "
            f"its storage holds {max(available, 0):,} (a stride-0 or overlapping view, e.g. "
            "from expand()); store a real tensor (.clone()) instead"
        )


def checked_array(array: np.ndarray, where: str, what: str = "weight") -> np.ndarray:
    """``array`` in native byte order, refused (SNEError) when it is over the parameter cap
    or a stride-0 view (``np.broadcast_to``) that would grow when copied.

    >>> checked_array(np.arange(3, dtype=">f4"), "w.npz").dtype.byteorder
    '='
    """
    if array.size > 1 and any(st == 0 and n > 1 for n, st in zip(array.shape, array.strides)):
        raise SNEError(
            f"{where}: the {what} of shape {array.shape} is a stride-0 view (e.g. from "
            "np.broadcast_to) that would grow when copied; store a real array instead"
        )
    _check_count(int(array.size), where, f"the {what} of shape {array.shape}")
    if array.dtype.byteorder not in ("=", "|") and array.dtype.kind in "fiub":
        array = array.astype(array.dtype.newbyteorder("="))
    return array


class LayerKind(str, enum.Enum):
    """What a layer is; the encoder gives each kind its own learned type encoding.

    Examples
    --------
    >>> kind = LayerKind("conv2d")
    >>> kind is LayerKind.CONV2D, kind.kernel_dims, kind.weight_ndim
    (True, 2, 4)
    >>> LayerKind.LSTM.gates  # i, f, g, o stacked along the weight's rows
    4
    """

    DENSE = "dense"
    CONV1D = "conv1d"
    CONV2D = "conv2d"
    CONV3D = "conv3d"
    CONV_TRANSPOSE1D = "conv_transpose1d"
    CONV_TRANSPOSE2D = "conv_transpose2d"
    CONV_TRANSPOSE3D = "conv_transpose3d"
    NORM = "norm"
    EMBEDDING = "embedding"
    ATTENTION = "attention"
    # Bare parameters, outside any layer module (new kinds go last: the encoder's type ids
    # of the kinds above stay what they were, so saved regressors keep their meaning).
    TOKEN = "token"  # learned tokens (ViT's cls_token, DeiT's distillation token): (n, dim)
    POSITION = "position"  # position tables added to tokens (pos_embed): (positions, dim)
    SCALE = "scale"  # per-channel layer scale (ConvNeXt's gamma): (channels,)
    ATTENTION_BIAS = "attention_bias"  # Swin's relative_position_bias_table: (entries, heads)
    # Recurrent layers: one layer per weight matrix, (gates * hidden, in) with the gates
    # stacked along the rows in torch's order (LSTM: i, f, g, o; GRU: r, z, n; RNN: one).
    LSTM = "lstm"
    GRU = "gru"
    RNN = "rnn"

    @property
    def kernel_dims(self) -> int:
        """Number of spatial kernel dimensions of the weight (0 for non-convolutions)."""
        return _KERNEL_DIMS.get(self, 0)

    @property
    def weight_ndim(self) -> int:
        """The number of dimensions a weight of this kind has in torch layout."""
        if self in (LayerKind.NORM, LayerKind.SCALE):
            return 1
        return 2 + self.kernel_dims

    @property
    def gates(self) -> int:
        """Gates stacked along a recurrent weight's rows (1 for every other kind)."""
        return _GATES.get(self, 1)


_GATES = {LayerKind.LSTM: 4, LayerKind.GRU: 3, LayerKind.RNN: 1}

_KERNEL_DIMS = {
    LayerKind.CONV1D: 1,
    LayerKind.CONV2D: 2,
    LayerKind.CONV3D: 3,
    LayerKind.CONV_TRANSPOSE1D: 1,
    LayerKind.CONV_TRANSPOSE2D: 2,
    LayerKind.CONV_TRANSPOSE3D: 3,
}


@dataclass(frozen=True)
class LayerSpec:
    """The shapes of one layer: everything about it except the values.

    Examples
    --------
    >>> spec = LayerSpec(LayerKind.CONV2D, "conv1", weight_shape=(8, 3, 3, 3), bias_shape=(8,))
    >>> spec.num_params  # 8 * 3 * 3 * 3 + 8
    224
    """

    kind: LayerKind
    name: str
    weight_shape: tuple[int, ...]
    bias_shape: tuple[int, ...] | None

    @property
    def num_params(self) -> int:
        n = int(np.prod(self.weight_shape))
        return n + (int(np.prod(self.bias_shape)) if self.bias_shape is not None else 0)


@dataclass(frozen=True)
class NetworkSpec:
    """The shapes of a whole network; hashable, equal for networks of one architecture.

    Examples
    --------
    >>> import torch
    >>> a = NetworkWeights.from_pairs([(torch.zeros(4, 2), torch.zeros(4))])
    >>> b = NetworkWeights.from_pairs([(torch.ones(4, 2), torch.ones(4))])
    >>> a.spec == b.spec, len(a.spec), a.spec.num_params
    (True, 1, 12)
    >>> {a.spec: "computed once per architecture"}[b.spec]
    'computed once per architecture'
    """

    layers: tuple[LayerSpec, ...]

    @property
    def num_params(self) -> int:
        return sum(layer.num_params for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __str__(self) -> str:
        """The layers as a table (``print(net.spec)``); ``repr`` keeps the dataclass form.

        >>> print(NetworkSpec((LayerSpec(LayerKind.DENSE, "fc", (10, 16), (10,)),)))
        #  kind   name  weight  bias  params
        0  dense  fc    10x16   10       170
        total: 1 layers, 170 parameters
        """
        rows = [("#", "kind", "name", "weight", "bias", "params")]
        for i, layer in enumerate(self.layers):
            shapes = (_dims(layer.weight_shape), _dims(layer.bias_shape))
            rows.append((str(i), layer.kind.value, layer.name, *shapes, f"{layer.num_params:,}"))
        widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
        lines = [
            "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths)), row[-1].rjust(widths[-1])])
            for row in rows
        ]
        return "\n".join([*lines, f"total: {len(self)} layers, {self.num_params:,} parameters"])


def _dims(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "x".join(str(n) for n in shape)


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: its kind, weight (torch layout), optional bias and original name.

    >>> import torch
    >>> layer = Layer(LayerKind.DENSE, "fc", torch.zeros(10, 16), torch.zeros(10))
    >>> layer.spec.weight_shape, layer.num_params
    ((10, 16), 170)
    """

    kind: LayerKind
    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, LayerKind):
            object.__setattr__(self, "kind", _parse_kind(self.kind, self.name))
        object.__setattr__(self, "weight", _as_tensor(self.weight, self.name, "weight"))
        if self.bias is not None:
            object.__setattr__(self, "bias", _as_tensor(self.bias, self.name, "bias"))
        self._check_shapes()

    def _check_shapes(self) -> None:
        w, b, kind = self.weight, self.bias, self.kind
        if kind is not LayerKind.NORM and w.dim() != kind.weight_ndim:
            raise SNEError(
                f"layer {self.name!r} ({kind.value}): expected a weight of {kind.weight_ndim} "
                f"dims in torch layout, got shape {tuple(w.shape)}"
            )
        if w.numel() == 0:
            raise SNEError(f"layer {self.name!r}: the weight is empty (shape {tuple(w.shape)})")
        if w.shape[0] % kind.gates:
            raise SNEError(
                f"layer {self.name!r} ({kind.value}): expected {kind.gates} gates stacked along "
                f"the weight's rows, got shape {tuple(w.shape)} ({w.shape[0]} rows)"
            )
        if b is not None and b.dim() != 1:
            raise SNEError(f"layer {self.name!r}: expected a 1-d bias, got shape {tuple(b.shape)}")

    @property
    def spec(self) -> LayerSpec:
        bias_shape = tuple(self.bias.shape) if self.bias is not None else None
        return LayerSpec(self.kind, self.name, tuple(self.weight.shape), bias_shape)

    @property
    def num_params(self) -> int:
        return self.weight.numel() + (self.bias.numel() if self.bias is not None else 0)

    def replace(self, weight: torch.Tensor, bias: torch.Tensor | None) -> Layer:
        """A copy of this layer with other values (same kind and name)."""
        return Layer(self.kind, self.name, weight, bias)


@dataclass(frozen=True, eq=False)
class NetworkWeights:
    """The weights of one network: its layers in order from input to output.

    ``is_chain`` is True when each layer feeds the next and nothing else (an MLP, a plain
    CNN): only then are hidden-unit permutations between neighbouring layers known to
    preserve the network's function. ``source`` says where the weights came from, for
    error messages.

    >>> import torch
    >>> net = NetworkWeights.from_pairs([(torch.randn(16, 8), torch.randn(16)),
    ...                                  (torch.randn(3, 16), None)])
    >>> len(net), net.num_params, net.spec.layers[1].weight_shape
    (2, 192, (3, 16))
    """

    layers: tuple[Layer, ...]
    source: str = "<weights>"
    is_chain: bool = False
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise SNEError(f"{self.source}: expected a network with at least one layer, got none")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise SNEError(
                    f"{self.source}: expected sne_plugin.Layer items, got {type(layer).__name__}"
                )
        _check_count(self.num_params, self.source, "the network")

    @classmethod
    def from_pairs(
        cls,
        pairs: Sequence[tuple[object, object | None]],
        *,
        source: str = "<pairs>",
        names: Sequence[str] | None = None,
    ) -> NetworkWeights:
        """An MLP or plain CNN from ``(weight, bias)`` pairs; the kind follows the weight's dims."""
        layers = []
        for i, (w, b) in enumerate(pairs):
            name = names[i] if names is not None else f"layer{i}"
            weight = _as_tensor(w, name, "weight", source)
            kind = kind_for_ndim(weight.dim(), where=f"{source}, layer {name!r}")
            layers.append(
                Layer(
                    kind, name, weight, None if b is None else _as_tensor(b, name, "bias", source)
                )
            )
        return cls(tuple(layers), source=source, is_chain=True)

    @property
    def spec(self) -> NetworkSpec:
        return NetworkSpec(tuple(layer.spec for layer in self.layers))

    @property
    def num_params(self) -> int:
        return sum(layer.num_params for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def tensors(self) -> Iterator[torch.Tensor]:
        """Every weight and bias, in layer order."""
        for layer in self.layers:
            yield layer.weight
            if layer.bias is not None:
                yield layer.bias

    def is_finite(self) -> bool:
        return all(_all_finite(t) for t in self.tensors())

    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> NetworkWeights:
        """A copy with every tensor converted."""
        layers = tuple(
            layer.replace(
                layer.weight.to(dtype=dtype, device=device),
                None if layer.bias is None else layer.bias.to(dtype=dtype, device=device),
            )
            for layer in self.layers
        )
        return NetworkWeights(layers, self.source, self.is_chain, dict(self.meta))

    def with_layers(self, layers: Sequence[Layer]) -> NetworkWeights:
        return NetworkWeights(tuple(layers), self.source, self.is_chain, dict(self.meta))

    def flatten(self) -> np.ndarray:
        """All parameters as one float32 vector (weights then bias, layer by layer)."""
        parts = [t.detach().reshape(-1).to(torch.float32).cpu().numpy() for t in self.tensors()]
        return np.concatenate(parts)


def _all_finite(t: torch.Tensor) -> bool:
    """No NaN or inf in ``t``: numpy's check on CPU tensors numpy can view (a quarter of
    torch's per-call cost on small tensors, which the pruner's hot path checks), else torch's."""
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and not t.requires_grad:
        try:
            return bool(np.isfinite(t.numpy()).all())
        except RuntimeError:  # a view numpy cannot share (negative or conjugate bit set)
            pass
    return bool(torch.isfinite(t).all())


def kind_for_ndim(ndim: int, *, where: str) -> LayerKind:
    """The layer kind implied by a bare weight's number of dims (2: dense, 3-5: conv)."""
    kinds = {
        1: LayerKind.NORM,
        2: LayerKind.DENSE,
        3: LayerKind.CONV1D,
        4: LayerKind.CONV2D,
        5: LayerKind.CONV3D,
    }
    if ndim not in kinds:
        raise SNEError(f"{where}: expected a weight of 1 to 5 dims, got {ndim} dims")
    return kinds[ndim]


def _parse_kind(kind: object, name: str) -> LayerKind:
    try:
        return LayerKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in LayerKind)
        raise SNEError(
            f"layer {name!r}: unknown kind {kind!r}; expected one of {allowed}"
        ) from None


def _as_tensor(value: object, name: str, what: str, source: str | None = None) -> torch.Tensor:
    where = f"{source}, layer {name!r}" if source else f"layer {name!r}"
    if isinstance(value, torch.Tensor):
        tensor = checked_tensor(value, where, what)
    else:
        try:
            array = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise SNEError(
                f"{where}: expected a numeric array as {what}, got {type(value).__name__} ({exc})"
            ) from None
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
        ):
            raise SNEError(f"{where}: expected a numeric array as {what}, got dtype {array.dtype}")
        array = checked_array(array, where, what)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dim() == 0:
        raise SNEError(f"{where}: expected an array as {what}, got a 0-d scalar")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise SNEError(f"{where}: expected a real-valued {what}, got dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    return tensor
