"""Read the weights of a ``torch.nn.Module``.

Layers come in *registration order* (the order of ``named_children``, depth first), which
is the execution order of ordinary models such as ``nn.Sequential`` stacks and modules that
create their sub-modules in the order ``forward`` uses them. It is not inferred from a
forward pass, because the input shape is not known in general. One exception is made:
``nn.TransformerEncoderLayer`` is read in its execution order (attention, norm1, linear1,
linear2, norm2; or norm1, attention, norm2, linear1, linear2 when ``norm_first``).

Each tensor is copied (detached and cloned), so the result is a snapshot of the module.
A norm without affine parameters has no weights and is skipped silently.

Beyond torch's own layers (:mod:`._families`): bare parameters of other modules (ViT's
``cls_token`` and ``pos_embed``, ConvNeXt's layer scale, Swin's
``relative_position_bias_table``) are read before the module's children (where its state
dict lists them), as layers of kinds
``token``, ``position``, ``scale`` and ``attention_bias``; ``nn.LSTM``, ``nn.GRU``,
``nn.RNN`` and their cells give one layer per weight matrix; Hugging Face's ``Conv1D``
(GPT-2), which stores its weight as ``(in, out)``, is read as a dense layer with the weight
transposed to ``(out, in)``; a module of a class from outside torch holding a 1-d
``weight`` (and a ``bias`` of its length), or ``gamma`` and ``beta``, is a norm
(``LlamaRMSNorm``). A tensor tied to one read before (an output head sharing the
embedding's weight) is read once, where first met; ``meta["tied"]`` lists the others.
Buffers (masks, index tables, running statistics) are never weights.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from sne_plugin.errors import SNEError
from sne_plugin.readers._common import Skipped, finish, make_layer
from sne_plugin.readers._families import TiedTensors, bare_kind, bare_layer, recurrent_layers
from sne_plugin.weights import Layer, LayerKind, NetworkWeights

__all__ = ["read_module"]

_CONV_KINDS: tuple[tuple[type[nn.Module], LayerKind], ...] = (
    (nn.ConvTranspose1d, LayerKind.CONV_TRANSPOSE1D),
    (nn.ConvTranspose2d, LayerKind.CONV_TRANSPOSE2D),
    (nn.ConvTranspose3d, LayerKind.CONV_TRANSPOSE3D),
    (nn.Conv1d, LayerKind.CONV1D),
    (nn.Conv2d, LayerKind.CONV2D),
    (nn.Conv3d, LayerKind.CONV3D),
)
_NORMS = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
)
_PASSIVE_MODULES = (
    "torch.nn.modules.activation",
    "torch.nn.modules.dropout",
    "torch.nn.modules.pooling",
    "torch.nn.modules.flatten",
    "torch.nn.modules.linear",  # nn.Identity lives here; Linear is a layer anyway
    "torch.nn.modules.padding",
    "torch.nn.modules.pixelshuffle",
    "torch.nn.modules.upsampling",
)


def read_module(module: nn.Module, *, strict: bool = True) -> NetworkWeights:
    """The layers of ``module`` in registration order (see the module docstring).

    >>> from torch import nn
    >>> net = read_module(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    >>> [layer.spec.weight_shape for layer in net], net.is_chain
    ([(8, 4), (2, 8)], True)
    """
    source = f"<{type(module).__name__} module>"
    layers: list[Layer] = []
    skipped = Skipped()
    tied = TiedTensors()
    dropped: list[str] = []
    for name, sub in _walk(module, ""):
        for layer in _read_one(name or "<root>", sub, skipped, source):
            if _is_tied(layer, tied):
                dropped.append(layer.name)
            else:
                layers.append(layer)
    meta: dict[str, object] | None = {"tied": dropped} if dropped else None
    net = finish(
        layers, skipped, source=source, strict=strict, is_chain=_is_chain(module), meta=meta
    )
    return _snapshot(net)


def _is_tied(layer: Layer, tied: TiedTensors) -> bool:
    """Whether every tensor of ``layer`` was read before (under another layer's name)."""
    firsts = [
        tied.first(tensor, layer.name)
        for tensor in (layer.weight, layer.bias)
        if tensor is not None
    ]
    return all(first is not None for first in firsts)


def _children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    children = dict(module.named_children())
    if isinstance(module, nn.TransformerEncoderLayer):
        order = ["self_attn", "norm1", "linear1", "linear2", "norm2"]
        if module.norm_first:
            order = ["norm1", "self_attn", "norm2", "linear1", "linear2"]
        order += [key for key in children if key not in order]
        return [(key, children[key]) for key in order if key in children]
    return list(children.items())


def _walk(
    module: nn.Module, prefix: str, seen: set[int] | None = None
) -> Iterator[tuple[str, nn.Module]]:
    """Modules depth first, each once (a shared module is read where it is first registered)."""
    seen = set() if seen is None else seen
    if id(module) in seen:
        return
    seen.add(id(module))
    yield prefix, module
    if _reads_whole(module):
        return
    for name, child in _children(module):
        yield from _walk(child, f"{prefix}.{name}" if prefix else name, seen)


def _reads_whole(module: nn.Module) -> bool:
    """Modules whose every parameter (children and parametrizations too) one reader covers."""
    whole = (nn.MultiheadAttention, nn.Linear, nn.Embedding, nn.EmbeddingBag, nn.RNNBase)
    return isinstance(module, (*whole, nn.RNNCellBase)) or _is_hf_conv1d(module)


def _is_hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a dense layer whose weight is stored ``(in, out)``."""
    cls = type(module)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers.")


def _tensor(value: torch.Tensor | None) -> torch.Tensor | None:
    # no copy yet: Layer checks the tensor first (a stride-0 view must not be materialized),
    # then read_module copies what it read (_snapshot)
    return None if value is None else value.detach()


def _snapshot(net: NetworkWeights) -> NetworkWeights:
    """``net`` with every tensor copied, so that training the module does not change it."""
    layers = [
        layer.replace(layer.weight.clone(), None if layer.bias is None else layer.bias.clone())
        for layer in net.layers
    ]
    return net.with_layers(layers)


def _read_one(name: str, module: nn.Module, skipped: Skipped, source: str) -> list[Layer]:
    _refuse_lazy(name, module, source)
    if isinstance(module, nn.MultiheadAttention):
        return _read_attention(name, module, skipped, source)
    if isinstance(module, nn.Linear):
        return [
            make_layer(
                LayerKind.DENSE, name, _tensor(module.weight), _tensor(module.bias), source=source
            )
        ]
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return [make_layer(LayerKind.EMBEDDING, name, _tensor(module.weight), None, source=source)]
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        return _read_recurrent(name, module, skipped, source)
    if _is_hf_conv1d(module):
        return [_read_hf_conv1d(name, module, source)]
    for cls, kind in _CONV_KINDS:
        if isinstance(module, cls):
            return [_read_conv(name, module, kind, source)]
    if isinstance(module, _NORMS):
        return _read_norm(name, module, source)
    if _is_parametrization(module):
        return []
    return _read_bare(name, module, skipped, source)


def _read_bare(name: str, module: nn.Module, skipped: Skipped, source: str) -> list[Layer]:
    """The own parameters of a module that is no layer, before its children (as a state
    dict lists them): tokens, position tables, layer scales, bias tables
    (:func:`bare_kind`); any other is skipped (strict: an error)."""
    own = dict(module.named_parameters(recurse=False))
    outside = not type(module).__module__.startswith("torch.")  # torch's PReLU is no norm
    layers = _custom_norm(name, own, source) if outside else []
    unknown = []
    for key, param in own.items():
        kind = bare_kind(key, tuple(param.shape))
        full = key if name == "<root>" else f"{name}.{key}"
        if kind is None:
            unknown.append(key)
        else:
            layers.append(bare_layer(kind, full, param.detach(), source=source))
    if unknown:
        skipped.add(name, f"{type(module).__name__} with parameters {', '.join(unknown)}")
    return layers


def _custom_norm(name: str, own: dict[str, nn.Parameter], source: str) -> list[Layer]:
    """A norm of a library's own class (transformers' ``LlamaRMSNorm``, ``T5LayerNorm``; a
    hand-written LayerNorm with ``gamma`` and ``beta``): a 1-d ``weight`` (or ``gamma``) and
    an optional ``bias`` (``beta``) of its length, read as a state dict would read them. The
    keys it takes are removed from ``own``."""
    for weight_key, bias_key in (("weight", "bias"), ("gamma", "beta")):
        weight, bias = own.get(weight_key), own.get(bias_key)
        if weight is None or weight.dim() != 1 or (weight_key == "gamma" and bias is None):
            continue
        if bias is not None and tuple(bias.shape) != tuple(weight.shape):
            continue
        for key in (weight_key, bias_key):
            own.pop(key, None)
        norm = make_layer(LayerKind.NORM, name, weight.detach(), _tensor(bias), source=source)
        return [norm]
    return []


def _read_recurrent(name: str, module: nn.Module, skipped: Skipped, source: str) -> list[Layer]:
    kinds = {"LSTM": LayerKind.LSTM, "GRU": LayerKind.GRU}
    mode = str(getattr(module, "mode", type(module).__name__.removesuffix("Cell")))
    kind = kinds.get(mode, LayerKind.RNN)
    params = {key: p.detach() for key, p in module.named_parameters(recurse=False)}
    layers, used = recurrent_layers(name, params, source=source, kind=kind)
    extra = [key for key in params if key not in used]
    if extra:
        skipped.add(name, f"{type(module).__name__} with parameters {', '.join(extra)}")
    return layers


def _read_hf_conv1d(name: str, module: nn.Module, source: str) -> Layer:
    weight = _tensor(getattr(module, "weight", None))
    if weight is None or weight.dim() != 2:
        shape = None if weight is None else tuple(weight.shape)
        raise SNEError(
            f"{source}, module {name!r} (transformers Conv1D): expected a 2-d weight "
            f"(in, out), got {shape}"
        )
    return make_layer(
        LayerKind.DENSE, name, weight.t(), _tensor(getattr(module, "bias", None)), source=source
    )


def _refuse_lazy(name: str, module: nn.Module, source: str) -> None:
    for key, param in module.named_parameters(recurse=False):
        if isinstance(param, nn.parameter.UninitializedParameter):
            raise SNEError(
                f"{source}, module {name!r} ({type(module).__name__}): expected initialized "
                f"parameters, got an uninitialized {key!r}; run one forward pass first"
            )


def _is_parametrization(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn.utils.parametriz")


def _read_conv(name: str, module: nn.Module, kind: LayerKind, source: str) -> Layer:
    groups = int(getattr(module, "groups", 1))
    weight = _tensor(getattr(module, "weight", None))
    return make_layer(
        kind, name, weight, _tensor(getattr(module, "bias", None)), source=source, groups=groups
    )


def _read_norm(name: str, module: nn.Module, source: str) -> list[Layer]:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return []  # no affine parameters: nothing to read
    bias = getattr(module, "bias", None)
    bias = bias if isinstance(bias, torch.Tensor) else None
    return [make_layer(LayerKind.NORM, name, _tensor(weight), _tensor(bias), source=source)]


def _read_attention(
    name: str, module: nn.MultiheadAttention, skipped: Skipped, source: str
) -> list[Layer]:
    kind = LayerKind.ATTENTION
    layers = []
    if module.in_proj_weight is not None:
        layers.append(
            make_layer(
                kind,
                f"{name}.in_proj",
                _tensor(module.in_proj_weight),
                _tensor(module.in_proj_bias),
                source=source,
            )
        )
    else:
        biases = (None, None, None) if module.in_proj_bias is None else module.in_proj_bias.chunk(3)
        for part, bias in zip(("q", "k", "v"), biases):
            weight = getattr(module, f"{part}_proj_weight")
            layers.append(
                make_layer(
                    kind, f"{name}.{part}_proj", _tensor(weight), _tensor(bias), source=source
                )
            )
    out = module.out_proj
    layers.append(
        make_layer(kind, f"{name}.out_proj", _tensor(out.weight), _tensor(out.bias), source=source)
    )
    extra = [key for key in ("bias_k", "bias_v") if getattr(module, key, None) is not None]
    if extra:
        skipped.add(name, f"MultiheadAttention with parameters {', '.join(extra)}")
    return layers


def _is_chain(module: nn.Module) -> bool:
    """True when each weighted layer feeds the next and nothing else, as traced.

    A (nested) ``nn.Sequential`` of layers, norms, activations, dropout and pooling is a
    chain at once. Any other module is traced with ``torch.fx``: it is a chain when its data
    path is one line (no operation takes two inputs that depend on the network's input, and
    no intermediate result is used twice), every module it calls is such a piece, no
    parameter is used outside one, and the layers run in registration order (the order they
    are read in). The same rule as the ONNX reader's, so a network read as a module, from its
    ONNX export or as a state dict of a plain chain gets one answer. A module that cannot be
    traced is not a chain.
    """
    if type(module) is nn.Sequential:
        return all(_is_chain_piece(child) or _is_chain(child) for child in module.children())
    key = _structure(module)
    if key not in _TRACED:
        try:
            graph = torch.fx.Tracer().trace(module)
        except Exception:  # data-dependent control flow, unsupported ops: not provably a chain
            _TRACED[key] = False
        else:
            _TRACED[key] = _traced_chain(module, graph)
        while len(_TRACED) > 256:
            _TRACED.pop(next(iter(_TRACED)))
    return _TRACED[key]


_TRACED: dict[tuple[object, ...], bool] = {}
"""Traced answers by module structure: a trace costs milliseconds, and a search reads the
same architecture at every step of every trial."""


def _structure(module: nn.Module) -> tuple[object, ...]:
    """What a trace depends on: each sub-module's name, class and plain settings."""
    return tuple(
        (name, type(sub), repr(sorted((k, v) for k, v in vars(sub).items() if _setting(k, v))))
        for name, sub in module.named_modules()
    )


def _setting(key: str, value: object) -> bool:
    return not key.startswith("_") and isinstance(value, (bool, int, float, str, tuple, type(None)))


def _traced_chain(module: nn.Module, graph: torch.fx.Graph) -> bool:
    live: set[torch.fx.Node] = set()  # nodes whose value depends on the network's input
    called: list[str] = []
    for node in graph.nodes:
        if node.op == "get_attr":
            return False  # a parameter or buffer used directly, outside a layer
        if _is_shape_query(node):
            continue  # x.size(0), x.shape: not data, whatever uses it stays on one line
        inputs = [n for n in node.all_input_nodes if n in live]
        if node.op == "output":
            return len(inputs) <= 1 and _in_registration_order(module, called)
        if node.op != "placeholder" and len(inputs) != 1:
            if len(inputs) > 1:
                return False  # two data inputs: a merge (residual add, concat)
            continue
        if len([u for u in node.users if not _is_shape_query(u)]) > 1:
            return False  # one result used twice: a branch
        if node.op == "call_module":
            if not _is_chain_piece(module.get_submodule(str(node.target))):
                return False  # fx calls torch.nn's own modules whole: attention, RNNs...
            called.append(str(node.target))
        live.add(node)
    return False


def _in_registration_order(module: nn.Module, called: list[str]) -> bool:
    order = {name: i for i, (name, _) in enumerate(module.named_modules())}
    positions = [order[name] for name in called]
    return positions == sorted(positions)


def _is_shape_query(node: torch.fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in ("size", "dim", "numel")
    return node.op == "call_function" and node.target is getattr


def _is_chain_piece(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention):
        return False
    readable = (nn.Linear, nn.Embedding, *(cls for cls, _ in _CONV_KINDS), *_NORMS)
    if isinstance(module, readable):
        return True
    has_parts = any(True for _ in module.children()) or any(True for _ in module.parameters())
    return type(module).__module__ in _PASSIVE_MODULES and not has_parts
