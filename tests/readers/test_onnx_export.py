"""Module, state dict and ONNX exports (both exporters) of one model agree layer by layer."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from sne_plugin.readers import read_weights
from sne_plugin.weights import LayerKind, NetworkWeights

FOLDED = {"dynamo-optimized", "legacy-folded"}


def _summary(net: NetworkWeights) -> list[tuple[str, str, tuple[int, ...], tuple[int, ...] | None]]:
    return [(s.kind.value, s.name, s.weight_shape, s.bias_shape) for s in net.spec.layers]


def _assert_same_values(a: NetworkWeights, b: NetworkWeights) -> None:
    for left, right in zip(a, b, strict=True):
        torch.testing.assert_close(left.weight, right.weight, atol=1e-6, rtol=0)
        assert (left.bias is None) == (right.bias is None)
        if left.bias is not None:
            torch.testing.assert_close(left.bias, right.bias, atol=1e-6, rtol=0)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * factor[:, None, None, None]
    bias = (conv.bias - bn.running_mean) * factor + bn.bias
    return weight.detach(), bias.detach()


def test_module_and_state_dict_agree(cnn: nn.Module) -> None:
    for canonical in (False, True):
        from_module = read_weights(cnn, canonical=canonical)
        from_state = read_weights(cnn.state_dict(), canonical=canonical)
        assert _summary(from_module) == _summary(from_state)
        _assert_same_values(from_module, from_state)
        assert from_module.is_chain and from_state.is_chain  # a norm of its conv's width
    assert _summary(read_weights(cnn)) == [
        ("conv2d", "0", (4, 1, 3, 3), (4,)),
        ("norm", "1", (4,), (4,)),
        ("conv2d", "3", (6, 4, 3, 3), (6,)),
        ("dense", "7", (3, 6), (3,)),
    ]
    folded = read_weights(cnn, canonical=True)
    assert [s[1] for s in _summary(folded)] == ["0", "3", "7"]  # BatchNorm folded


def test_cnn_onnx_agrees_with_module(cnn: nn.Module, cnn_onnx) -> None:
    variant, path = cnn_onnx
    stored, from_module = read_weights(path), read_weights(cnn)
    assert stored.is_chain and stored.source == str(path)
    if variant not in FOLDED:
        assert _summary(stored) == _summary(from_module)
        _assert_same_values(stored, from_module)
    # canonical: BatchNorm folded, by the exporter or by the reader
    from_onnx = read_weights(path, canonical=True)
    expected = [layer for layer in from_module if layer.kind is not LayerKind.NORM]
    assert (
        _summary(from_onnx)
        == _summary(read_weights(cnn, canonical=True))
        == [
            (s.kind.value, s.name, s.weight_shape, s.bias_shape) for s in (x.spec for x in expected)
        ]
    )
    weight, bias = _fold(cnn[0], cnn[1])
    torch.testing.assert_close(from_onnx.layers[0].weight, weight, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(from_onnx.layers[0].bias, bias, atol=1e-5, rtol=1e-5)
    _assert_same_values(
        from_onnx.with_layers(from_onnx.layers[1:]), from_module.with_layers(expected[1:])
    )


def test_dynamo_optimized_export_has_external_data(cnn_onnx) -> None:
    variant, path = cnn_onnx
    if variant == "dynamo-optimized":
        assert path.with_name(path.name + ".data").exists()


def test_mlp_onnx_agrees_with_module_and_state_dict(mlp: nn.Module, mlp_onnx) -> None:
    _, path = mlp_onnx
    from_onnx, from_module, from_state = (read_weights(x) for x in (path, mlp, mlp.state_dict()))
    assert _summary(from_onnx) == _summary(from_module) == _summary(from_state)
    _assert_same_values(from_onnx, from_module)
    assert from_onnx.is_chain and from_module.is_chain and from_state.is_chain


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(x + torch.relu(self.fc1(x)))


def test_residual_export_is_not_a_chain(tmp_path) -> None:
    model = _Residual().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 4),), str(tmp_path / "r.onnx"), dynamo=False)
    net = read_weights(tmp_path / "r.onnx")
    assert [layer.name for layer in net] == ["fc1", "fc2"]
    assert not net.is_chain and not read_weights(model).is_chain


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(x)).mean(1))


def test_transformer_dynamo_export(tmp_path) -> None:
    torch.manual_seed(0)
    model = _Tiny().eval()
    with torch.no_grad():  # the exporter drops an all-zero bias; make every bias non-zero
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.uniform_(-0.1, 0.1)
    path = tmp_path / "t.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randint(0, 10, (2, 5)),), str(path), dynamo=True, external_data=False
        )
    net = read_weights(path)
    module_net = read_weights(model)
    assert len(net) == len(module_net) == 8
    assert [layer.kind for layer in net] == [layer.kind for layer in module_net]
    assert [layer.spec.weight_shape for layer in net] == [
        layer.spec.weight_shape for layer in module_net
    ]
    _assert_same_values(net, module_net)
    assert [layer.name for layer in net][3:] == [
        "enc.norm1",
        "enc.linear1",
        "enc.linear2",
        "enc.norm2",
        "head",
    ]
    assert not net.is_chain and not module_net.is_chain
