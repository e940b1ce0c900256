"""The ONNX strict check flags parameters, not buffers, and misses none (both exporters)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from sne_plugin.errors import SNEError
from sne_plugin.readers import read_weights

# The default export of each exporter (dynamo: optimized, external data; legacy: folded).
EXPORTERS = {"dynamo": {"dynamo": True}, "legacy": {"dynamo": False}}


def _slow(*values: object) -> object:
    """A dynamo export takes seconds: two cases run in the fast tier, the others in the slow."""
    return pytest.param(*values, marks=pytest.mark.slow)


class _ZeroBuffer(nn.Module):
    """A zero buffer added to the data, as BERT's and GPT-2's attention masks are."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.register_buffer("mask", torch.zeros(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + self.mask


class _CausalMask(nn.Module):
    """A 0 / -inf mask buffer over the scores of a (tiny) attention."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("mask", torch.full((3, 3), float("-inf")).triu(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        scores = h @ h.transpose(1, 2) + self.mask
        return torch.softmax(scores, -1) @ h


class _Token(nn.Module):
    """A class token expanded to the batch and concatenated to the data, as ViT's is."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Parameter(torch.randn(1, 1, 4))
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tok.expand(x.shape[0], -1, -1), self.fc(x)], 1)


class _LayerScale(nn.Module):
    """A per-channel factor at a layer scale's usual initial value (all elements equal),
    under a name no library gives layer scales (a ``gamma`` is read as a ``scale`` layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.alpha = nn.Parameter(1e-6 * torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * self.fc(x)


def _export(model: nn.Module, x: torch.Tensor, path: Path, exporter: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(path), verbose=False, **EXPORTERS[exporter])
    return path


@pytest.mark.parametrize(
    ("model", "shape", "exporter"),
    [
        (_ZeroBuffer, (2, 4), "dynamo"),
        (_ZeroBuffer, (2, 4), "legacy"),
        _slow(_CausalMask, (2, 3, 4), "dynamo"),
        (_CausalMask, (2, 3, 4), "legacy"),
    ],
)
def test_buffers_are_not_parameters(tmp_path: Path, model: type, shape, exporter: str) -> None:
    torch.manual_seed(0)
    module = model()
    net = read_weights(_export(module, torch.randn(*shape), tmp_path / "m.onnx", exporter))
    assert [layer.name for layer in net] == ["fc"]
    assert net.num_params == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("model", "shape", "param", "op", "exporter"),
    [
        (_Token, (2, 3, 4), "tok", "Concat", "dynamo"),
        (_Token, (2, 3, 4), "tok", "Concat", "legacy"),
        _slow(_LayerScale, (2, 4), "alpha", "Mul", "dynamo"),
        (_LayerScale, (2, 4), "alpha", "Mul", "legacy"),
    ],
)
def test_every_parameter_is_read_or_flagged(
    tmp_path: Path, model: type, shape, param: str, op: str, exporter: str
) -> None:
    torch.manual_seed(0)
    module = model()
    path = _export(module, torch.randn(*shape), tmp_path / "m.onnx", exporter)
    with pytest.raises(SNEError, match=rf"cannot read the parameters .*\(ONNX {op} of '{param}'\)"):
        read_weights(path)
    with pytest.warns(UserWarning, match=rf"skipped unreadable parameters of .*'{param}'"):
        net = read_weights(path, strict=False)
    total = sum(p.numel() for p in module.parameters())
    assert net.num_params == total - getattr(module, param).numel()  # all but the flagged one
