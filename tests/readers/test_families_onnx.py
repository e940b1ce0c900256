"""The model families of ``test_families.py`` exported to ONNX (both exporters, torch 2.13)
and read with ``strict=True``: the same layers as the module reading (kinds, shapes,
values; bare parameters with their names and kinds), a tied head once.

Each model is wrapped so that it takes one tensor and returns its output tensors: the
legacy exporter cannot trace ``BertModel`` itself (transformers' ``use_cache`` default
is passed twice) nor ``GPT2LMHeadModel`` (``aten::diff`` of its default mask). All
parameters are drawn from a normal distribution: DeiT's tokens and Swin's bias tables start
at zero, which a legacy export cannot tell from a buffer.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from sne_plugin.errors import SNEError
from sne_plugin.readers import read_weights
from sne_plugin.readers._families import BARE_KINDS
from sne_plugin.weights import Layer, LayerKind, NetworkWeights

pytest.importorskip("transformers", reason="the hf extra (transformers) is missing")


def _builders() -> object:
    """``test_families.py``, the builders of the families (the tests import by path)."""
    spec = importlib.util.spec_from_file_location(
        "_sne_test_families", Path(__file__).with_name("test_families.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FAMILIES = _builders()

EXPORTERS = {
    "legacy": {"dynamo": False},  # its default: do_constant_folding=True
    "legacy-plain": {"dynamo": False, "do_constant_folding": False},
    "dynamo": {"dynamo": True},  # its default: optimize=True, external data
    "dynamo-plain": {"dynamo": True, "optimize": False, "external_data": False},
}
NAMES_KEPT = {"dynamo", "dynamo-plain", "legacy-plain"}


class _Outputs(nn.Module):
    """``model(x)``'s output tensors, as a tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x).to_tuple()
        return tuple(value for value in out if isinstance(value, torch.Tensor))


def _image() -> torch.Tensor:
    return torch.randn(1, 3, 16, 16)


def _ids() -> torch.Tensor:
    return torch.randint(0, 8, (1, 8))


FAMILIES: dict[str, tuple[Callable[[], nn.Module], Callable[[], torch.Tensor]]] = {
    "vit": (_FAMILIES.vit, _image),  # type: ignore[attr-defined]
    "deit": (_FAMILIES.deit, _image),  # type: ignore[attr-defined]
    "convnext": (_FAMILIES.convnext, lambda: torch.randn(1, 3, 32, 32)),  # type: ignore[attr-defined]
    "bert": (_FAMILIES.bert, _ids),  # type: ignore[attr-defined]
    "gpt2": (_FAMILIES.gpt2, _ids),  # type: ignore[attr-defined]
    "swin": (_FAMILIES.swin, _image),  # type: ignore[attr-defined]
}


def _slow(*values: object) -> object:
    return pytest.param(*values, marks=pytest.mark.slow)


# (family, exporter): read whole under strict
WHOLE = [
    ("vit", "legacy"),
    _slow("vit", "dynamo"),
    ("deit", "legacy"),
    _slow("deit", "dynamo"),
    ("convnext", "legacy"),
    _slow("convnext", "dynamo"),
    ("bert", "legacy"),
    _slow("bert", "dynamo-plain"),
    ("gpt2", "legacy"),
    _slow("gpt2", "dynamo-plain"),
    ("swin", "legacy-plain"),
]
# (family, exporter, what the strict error says): the export left a parameter unreadable
REFUSED = [
    _slow("bert", "dynamo", r"folded into 'embedding_\d+'.*export with optimize=False"),
    _slow("gpt2", "dynamo", r"'model\.transformer\.wpe\.weight', which the exporter's optimizer"),
    ("swin", "legacy", r"ONNX Add of 'onnx::Add_\d+'"),  # the bias table folded, renamed
]


def _module(family: str) -> nn.Module:
    torch.manual_seed(0)
    model = _Outputs(FAMILIES[family][0]()).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_()
    return model


def _export(family: str, exporter: str, folder: Path) -> tuple[nn.Module, Path]:
    model, path = _module(family), folder / f"{family}-{exporter}.onnx"
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (FAMILIES[family][1](),), str(path), verbose=False, **EXPORTERS[exporter]
        )
    return model, path


def _matched(layer: Layer, others: list[Layer]) -> int:
    """The index of the layer of ``others`` with ``layer``'s kind, shapes and values."""
    for i, other in enumerate(others):
        if other.kind is not layer.kind or other.weight.shape != layer.weight.shape:
            continue
        if not torch.allclose(other.weight, layer.weight, atol=1e-6, rtol=1e-5):
            continue
        if (other.bias is None) != (layer.bias is None):
            continue
        if other.bias is None or torch.allclose(other.bias, layer.bias, atol=1e-6, rtol=1e-5):
            return i
    raise AssertionError(f"no layer of the module reading matches {layer.spec}")


def _assert_same_layers(from_onnx: NetworkWeights, from_module: NetworkWeights) -> None:
    left = list(from_module)
    for layer in from_onnx:
        left.pop(_matched(layer, left))
    assert not left, [layer.spec for layer in left]


def _bare(net: NetworkWeights) -> list[tuple[str, str]]:
    """The bare parameters, each checked to come before the layers of its module
    (as the module reader reads them; the layers around it may differ, the module reader
    reading by registration and the ONNX reader by execution)."""
    layers = list(net)
    for i, layer in enumerate(layers):
        module = layer.name.rpartition(".")[0]
        if layer.kind in BARE_KINDS:
            before = [x.name for x in layers[:i] if x.kind not in BARE_KINDS]
            assert not [name for name in before if name.startswith(f"{module}.")], layer.name
    return [(layer.kind.value, layer.name) for layer in layers if layer.kind in BARE_KINDS]


@pytest.mark.parametrize(("family", "exporter"), WHOLE)
def test_onnx_reading_is_the_module_reading(tmp_path: Path, family: str, exporter: str) -> None:
    model, path = _export(family, exporter, tmp_path)
    from_onnx, from_module = read_weights(path, strict=True), read_weights(model, strict=True)
    assert from_onnx.num_params == from_module.num_params
    _assert_same_layers(from_onnx, from_module)
    assert _bare(from_onnx) == _bare(from_module)
    assert bool(from_onnx.meta.get("tied")) == (family == "gpt2")  # the head, named by the export
    if exporter in NAMES_KEPT:
        assert sorted(x.name for x in from_onnx) == sorted(x.name for x in from_module)


@pytest.mark.parametrize(("family", "exporter", "message"), REFUSED)
def test_parameters_the_export_lost_are_refused(
    tmp_path: Path, family: str, exporter: str, message: str
) -> None:
    _, path = _export(family, exporter, tmp_path)
    with pytest.raises(SNEError, match=rf"cannot read the parameters .*{message}"):
        read_weights(path, strict=True)


@pytest.mark.slow
def test_swin_dynamo_export_fails(tmp_path: Path) -> None:
    """The dynamo exporter fails on SwinModel: torch.export on the model itself, the
    decomposition ("Cannot view a tensor") on the wrapped one. Nothing to read."""
    with pytest.raises(Exception, match=r"Failed to (export|decompose)"):
        _export("swin", "dynamo", tmp_path)


def test_kinds_of_the_bare_parameters_read_from_onnx(tmp_path: Path) -> None:
    _, path = _export("deit", "legacy", tmp_path)
    kinds = [(layer.kind, layer.name) for layer in read_weights(path) if layer.kind in BARE_KINDS]
    assert kinds == [
        (LayerKind.TOKEN, "model.embeddings.cls_token"),
        (LayerKind.POSITION, "model.embeddings.position_embeddings"),
        (LayerKind.TOKEN, "model.embeddings.distillation_token"),
    ]
