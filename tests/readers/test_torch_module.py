"""Reading nn.Module objects: every supported layer type, order, chains, strictness."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from sne_plugin.errors import SNEError
from sne_plugin.readers import read_weights
from sne_plugin.weights import LayerKind


def _kinds(module: nn.Module) -> list[tuple[str, str, tuple[int, ...], tuple[int, ...] | None]]:
    return [
        (s.kind.value, s.name, s.weight_shape, s.bias_shape)
        for s in read_weights(module).spec.layers
    ]


@pytest.mark.parametrize(
    ("layer", "kind", "weight_shape", "bias_shape"),
    [
        (nn.Linear(3, 4), "dense", (4, 3), (4,)),
        (nn.Linear(3, 4, bias=False), "dense", (4, 3), None),
        (nn.Conv1d(2, 4, 3), "conv1d", (4, 2, 3), (4,)),
        (nn.Conv2d(4, 8, 3, groups=2), "conv2d", (8, 2, 3, 3), (8,)),
        (nn.Conv2d(4, 4, 3, groups=4), "conv2d", (4, 1, 3, 3), (4,)),  # depthwise
        (nn.Conv3d(1, 2, 2), "conv3d", (2, 1, 2, 2, 2), (2,)),
        (nn.ConvTranspose1d(2, 3, 3), "conv_transpose1d", (2, 3, 3), (3,)),
        (nn.ConvTranspose2d(4, 6, 3, groups=2), "conv_transpose2d", (4, 3, 3, 3), (6,)),
        (nn.ConvTranspose3d(2, 2, 2), "conv_transpose3d", (2, 2, 2, 2, 2), (2,)),
        (nn.BatchNorm1d(5), "norm", (5,), (5,)),
        (nn.LayerNorm(6), "norm", (6,), (6,)),
        (nn.GroupNorm(2, 4), "norm", (4,), (4,)),
        (nn.InstanceNorm2d(3, affine=True), "norm", (3,), (3,)),
        (nn.Embedding(10, 4), "embedding", (10, 4), None),
    ],
)
def test_each_layer_type(layer: nn.Module, kind: str, weight_shape, bias_shape) -> None:
    net = read_weights(nn.Sequential(layer))
    assert [(s.kind.value, s.weight_shape, s.bias_shape) for s in net.spec.layers] == [
        (kind, weight_shape, bias_shape)
    ]
    assert net.is_chain


def test_norms_without_affine_are_skipped_silently() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, affine=False), nn.InstanceNorm1d(3))
    assert [s.kind for s in read_weights(model).spec.layers] == [LayerKind.DENSE]


def test_multihead_attention() -> None:
    assert _kinds(nn.Sequential(nn.MultiheadAttention(8, 2))) == [
        ("attention", "0.in_proj", (24, 8), (24,)),
        ("attention", "0.out_proj", (8, 8), (8,)),
    ]
    split = nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    assert [s[1:3] for s in _kinds(split)] == [
        ("<root>.q_proj", (8, 8)),
        ("<root>.k_proj", (8, 4)),
        ("<root>.v_proj", (8, 6)),
        ("<root>.out_proj", (8, 8)),
    ]


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_layer_in_execution_order(norm_first: bool) -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16, norm_first=norm_first)
    names = [s[1] for s in _kinds(layer)]
    if norm_first:
        assert names == [
            "norm1",
            "self_attn.in_proj",
            "self_attn.out_proj",
            "norm2",
            "linear1",
            "linear2",
        ]
    else:
        assert names == [
            "self_attn.in_proj",
            "self_attn.out_proj",
            "norm1",
            "linear1",
            "linear2",
            "norm2",
        ]
    assert not read_weights(layer).is_chain


def test_values_are_a_snapshot() -> None:
    model = nn.Linear(2, 2)
    net = read_weights(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(net.layers[0].weight, model.weight)


def test_nested_sequential_is_a_chain_custom_module_is_not() -> None:
    nested = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.Dropout(), nn.Linear(3, 1))
    assert read_weights(nested).is_chain

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

    assert not read_weights(Net()).is_chain
    assert not read_weights(nn.Sequential(nn.Linear(2, 2), Net())).is_chain


class _OneLine(nn.Module):
    """A custom module (not a Sequential) whose data path is one line."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm, self.fc = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4 * 36, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.conv(x)))
        return self.fc(x.view(x.size(0), -1))


class _OutOfOrder(_OneLine):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # fc registered last, runs first
        return self.conv(self.fc(x.flatten(1)).view(-1, 1, 1, 2))


class _Branch(_OneLine):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.fc((y + torch.relu(y)).flatten(1))


class _Tokens(_OneLine):
    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.token


@pytest.mark.parametrize(
    ("module", "chain"),
    [(_OneLine(), True), (_OutOfOrder(), False), (_Branch(), False), (_Tokens(), False)],
)
def test_a_custom_module_is_a_chain_when_its_traced_data_path_is_one_line(
    module: nn.Module, chain: bool
) -> None:
    assert read_weights(module, strict=False).is_chain is chain


def test_the_chain_answer_is_the_same_from_module_state_dict_and_onnx(tmp_path) -> None:
    model = _OneLine().eval()
    path = tmp_path / "one_line.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 1, 8, 8),), str(path), dynamo=False)
    forms = [model, model.state_dict(), path]
    assert [read_weights(form).is_chain for form in forms] == [True, True, True]


def test_shared_module_is_read_once() -> None:
    shared = nn.Linear(2, 2)
    assert len(read_weights(nn.Sequential(shared, nn.ReLU(), shared))) == 1


class _WithParameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.pos = nn.Parameter(torch.zeros(4, 2))


def test_unreadable_parameters_strict_and_not_strict() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.PReLU(), _WithParameter())
    with pytest.raises(
        SNEError, match=r"cannot read the parameters of 2 .*'1' \(PReLU with parameters weight\)"
    ):
        read_weights(model)
    with pytest.warns(UserWarning, match=r"'2' \(_WithParameter with parameters pos\)"):
        net = read_weights(model, strict=False)
    assert [layer.name for layer in net] == ["0", "2.fc"]


def test_lazy_module_not_initialized() -> None:
    with pytest.raises(
        SNEError, match=r"module '0' \(LazyLinear\): expected initialized parameters"
    ):
        read_weights(nn.Sequential(nn.LazyLinear(3)))


def test_weight_norm_parametrization_is_read() -> None:
    model = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(3, 2)))
    layer = read_weights(model).layers[0]
    torch.testing.assert_close(layer.weight, model[0].weight.detach())


def test_module_without_layers() -> None:
    with pytest.raises(
        SNEError, match=r"<Sequential module>: expected a network with at least one readable layer"
    ):
        read_weights(nn.Sequential(nn.ReLU()))
