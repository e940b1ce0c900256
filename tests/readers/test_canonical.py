"""One network, one encoding: the canonical form (BatchNorm folded, zero biases absent) and
SNERegressor agreeing on a network read as a module, a state dict, a checkpoint and ONNX."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sne_plugin.readers import read_many, read_weights
from sne_plugin.weights import LayerKind

# Measured (tests below, 3 networks x 6 forms): embeddings of the forms of one network lie
# at most 2.7e-5 apart (float32 rounding of the fold), two seeds of the Conv1d net 1.59.
EMBED_TOL = 1e-3
PREDICT_TOL = 1e-4


def _with_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm parameters and running statistics, so that folding matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


def _mlp() -> nn.Module:
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 2))
    nn.init.zeros_(model[2].bias)  # the dynamo exporter drops a zero bias
    return model.eval()


def _cnn() -> nn.Module:
    return _with_statistics(
        nn.Sequential(
            nn.Conv2d(1, 4, 3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(6, 3),
        )
    )


def _conv1d() -> nn.Module:
    return _with_statistics(
        nn.Sequential(
            nn.Conv1d(2, 8, 5),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Conv1d(8, 8, 3, bias=False),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(8, 4),
        )
    )


MODELS = {
    "mlp": (_mlp, (3, 5)),
    "cnn-bn": (_cnn, (2, 1, 8, 8)),
    "conv1d-bn": (_conv1d, (2, 2, 32)),
}
EXPORTS = {  # each exporter's default settings (both fold BatchNorm), and legacy unfolded
    "onnx-dynamo": {"dynamo": True},
    "onnx-legacy": {"dynamo": False},
    "onnx-legacy-unfolded": {"dynamo": False, "do_constant_folding": False},
}


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return MODELS[name][0]()


def _forms(name: str, folder: Path, exports: list[str]) -> dict[str, object]:
    model = _model(name)
    torch.save(model.state_dict(), folder / f"{name}.pt")
    forms: dict[str, object] = {
        "module": model,
        "state_dict": model.state_dict(),
        "checkpoint": folder / f"{name}.pt",
    }
    for export in exports:
        path = folder / f"{name}-{export}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = torch.randn(*MODELS[name][1])
            torch.onnx.export(model, (x,), str(path), verbose=False, **EXPORTS[export])
        forms[export] = path
    return forms


@pytest.fixture(scope="module")
def regressor():
    from sne_plugin import SNERegressor

    nets = []
    for seed in range(2):
        for name in MODELS:
            model = copy.deepcopy(_model(name))
            with torch.no_grad():
                for i, p in enumerate(model.parameters()):
                    p.add_(
                        0.1
                        * torch.randn(
                            p.shape, generator=torch.Generator().manual_seed(i + 100 * seed)
                        )
                    )
            nets.append(model)
    y = np.random.default_rng(0).uniform(size=len(nets))
    return SNERegressor(epochs=1, random_state=0, verbose=False).fit(nets, y)


def _check_agreement(regressor, forms: dict[str, object]) -> None:
    nets = read_many(list(forms.values()))  # as the estimators read them
    assert len({net.spec for net in nets}) == 1, [str(net.spec) for net in nets]
    X = list(forms.values())
    embeddings, predictions = regressor.transform(X), regressor.predict(X)
    for name, emb, pred in zip(forms, embeddings, predictions):
        assert np.linalg.norm(emb - embeddings[0]) < EMBED_TOL, name
        assert abs(pred - predictions[0]) < PREDICT_TOL, name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predictions_agree_across_forms(regressor, tmp_path: Path, name: str) -> None:
    _check_agreement(regressor, _forms(name, tmp_path, ["onnx-legacy", "onnx-legacy-unfolded"]))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_predictions_agree_with_dynamo_exports(regressor, tmp_path: Path, name: str) -> None:
    _check_agreement(regressor, _forms(name, tmp_path, ["onnx-dynamo"]))


def test_as_stored_the_forms_differ(regressor, tmp_path: Path) -> None:
    forms = _forms("conv1d-bn", tmp_path, ["onnx-legacy"])
    stored = [read_weights(forms[k]) for k in ("module", "onnx-legacy")]  # as stored
    assert [len(net) for net in stored] == [5, 3]  # the exporter folded the two BatchNorms
    embeddings = regressor.transform(stored)
    assert np.linalg.norm(embeddings[0] - embeddings[1]) > 10 * EMBED_TOL


def test_folded_layer_computes_what_conv_and_batchnorm_compute() -> None:
    torch.manual_seed(0)
    pair = _with_statistics(nn.Sequential(nn.Conv1d(2, 8, 5, bias=False), nn.BatchNorm1d(8)))
    (layer,) = read_weights(pair, canonical=True).layers
    assert layer.kind is LayerKind.CONV1D and layer.bias is not None
    x = torch.randn(3, 2, 20)
    folded = nn.functional.conv1d(x, layer.weight, layer.bias)
    torch.testing.assert_close(folded, pair(x), atol=1e-5, rtol=1e-5)


class _SharedOutput(nn.Module):
    """The conv's output feeds the BatchNorm and a skip: folding would change the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + self.bn(y)


def test_batchnorm_not_right_after_its_layer_is_kept() -> None:
    net = read_weights(_with_statistics(_SharedOutput()), canonical=True)
    assert [layer.kind for layer in net] == [LayerKind.CONV2D, LayerKind.NORM]


def test_zero_bias_is_no_bias() -> None:
    torch.manual_seed(0)
    with_zero = nn.Linear(4, 3)
    nn.init.zeros_(with_zero.bias)
    without = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        without.weight.copy_(with_zero.weight)
    a, b = read_many([with_zero, without])
    assert a.spec == b.spec and a.layers[0].bias is None
    torch.testing.assert_close(a.layers[0].weight, b.layers[0].weight)
    assert read_weights(with_zero).layers[0].bias is not None  # as stored
    (norm,) = read_many([nn.Sequential(nn.LayerNorm(4))])  # a norm keeps its zero bias
    assert norm.layers[0].bias is not None


def test_state_dict_batchnorm_without_affine_is_folded() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, affine=False)).eval()
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 2)
    x = torch.randn(5, 3)
    for form in (model, model.state_dict()):
        (layer,) = read_weights(form, canonical=True).layers
        torch.testing.assert_close(x @ layer.weight.T + layer.bias, model(x), atol=1e-5, rtol=0)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.c2, self.b2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


class _Residual(nn.Module):
    """Two blocks whose layers share names (c1, b1 ...) in a legacy export, and an Upsample
    (whose scales a legacy export writes as a float Constant node)."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.stem = nn.Upsample(scale_factor=2), nn.Conv2d(3, 4, 3)
        self.blocks, self.head = nn.Sequential(_Block(), _Block()), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(self.up(x))).mean((2, 3)))


@pytest.mark.parametrize("export", ["onnx-legacy", "onnx-legacy-unfolded"])
def test_residual_net_reads_alike_from_module_and_legacy_export(tmp_path: Path, export) -> None:
    torch.manual_seed(0)
    model = _with_statistics(_Residual())
    path = tmp_path / "r.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, 6, 6),), str(path), **EXPORTS[export])
    from_onnx, from_module = read_many([path, model])  # strict: the Constant is no parameter
    assert [layer.kind for layer in from_onnx] == [layer.kind for layer in from_module]
    assert len(from_module) == 6  # stem, four convs with their BatchNorms folded, head
    for a, b in zip(from_onnx, from_module, strict=True):
        torch.testing.assert_close(a.weight, b.weight, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.bias, b.bias, atol=1e-5, rtol=1e-5)
