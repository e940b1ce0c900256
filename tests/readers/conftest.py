"""Small models and their ONNX exports, shared by the reader tests (exports are slow)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

EXPORTS = {
    "dynamo-optimized": {"dynamo": True, "optimize": True},  # external data, BN folded
    "dynamo-plain": {"dynamo": True, "optimize": False, "external_data": False},
    "legacy-folded": {"dynamo": False, "do_constant_folding": True},
    "legacy-plain": {"dynamo": False, "do_constant_folding": False},
}


def make_cnn() -> nn.Module:
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    with torch.no_grad():  # non-trivial BN statistics, so that folding changes values
        bn = cnn[1]
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return cnn.eval()


def make_mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 2)
    ).eval()


def export(model: nn.Module, example: torch.Tensor, path: Path, **kwargs: object) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), verbose=False, **kwargs)  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="session")
def cnn() -> nn.Module:
    return make_cnn()


@pytest.fixture(scope="session")
def mlp() -> nn.Module:
    return make_mlp()


@pytest.fixture(scope="session", params=sorted(EXPORTS))
def cnn_onnx(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cnn: nn.Module
):
    folder = tmp_path_factory.mktemp(f"cnn-{request.param}")
    path = export(cnn, torch.randn(2, 1, 8, 8), folder / "cnn.onnx", **EXPORTS[request.param])
    return request.param, path


@pytest.fixture(scope="session", params=["dynamo-optimized", "legacy-plain"])
def mlp_onnx(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mlp: nn.Module
):
    folder = tmp_path_factory.mktemp(f"mlp-{request.param}")
    path = export(mlp, torch.randn(3, 5), folder / "mlp.onnx", **EXPORTS[request.param])
    return request.param, path
