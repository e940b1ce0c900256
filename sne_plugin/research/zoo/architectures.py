"""Named architectures for zoos: small networks for ``1 x 8 x 8`` input and 10 classes.

Every network is a :class:`ZooNet`: ``head(dropout(body(x)))``, where ``body`` maps images to
a feature vector and ``head`` is one ``nn.Linear``. Dropout sits on the features only, so a
fast trainer can apply a per-model rate as a mask.

>>> net = build("small_cnn", activation="tanh")
>>> sum(p.numel() for p in net.parameters()), tuple(net(torch.zeros(2, 1, 8, 8)).shape)
(4970, (2, 10))
>>> to_network_weights(net).is_chain
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from sne_plugin.errors import SNEError
from sne_plugin.readers.torch_module import read_module
from sne_plugin.research.util import lookup
from sne_plugin.weights import NetworkWeights

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "ArchSpec", "ZooNet", "build", "to_network_weights"]

InputShape = tuple[int, int, int]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


class ZooNet(nn.Module):
    """``head(dropout(body(x)))``."""

    def __init__(
        self, body: nn.Module, features: int, num_classes: int, *, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


@dataclass(frozen=True)
class ArchSpec:
    """A named architecture: its builder and whether the vmap trainer can train it."""

    name: str
    make_body: Callable[[str, InputShape], tuple[nn.Module, int]]
    vmappable: bool = True
    description: str = ""


def _act(name: str) -> nn.Module:
    return lookup(ACTIVATIONS, name, "activation")()


def _mlp(widths: Sequence[int]) -> Callable[[str, InputShape], tuple[nn.Module, int]]:
    def make(activation: str, shape: InputShape) -> tuple[nn.Module, int]:
        layers: list[nn.Module] = [nn.Flatten()]
        n_in = shape[0] * shape[1] * shape[2]
        for w in widths:
            layers += [nn.Linear(n_in, w), _act(activation)]
            n_in = w
        return nn.Sequential(*layers), n_in

    return make


def _cnn(
    channels: Sequence[int], strides: Sequence[int], kernel: int = 3, batchnorm: bool = False
) -> Callable[[str, InputShape], tuple[nn.Module, int]]:
    def make(activation: str, shape: InputShape) -> tuple[nn.Module, int]:
        layers: list[nn.Module] = []
        c_in = shape[0]
        for c, s in zip(channels, strides):
            layers.append(nn.Conv2d(c_in, c, kernel, stride=s, padding=kernel // 2))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c))
            layers.append(_act(activation))
            c_in = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        return nn.Sequential(*layers), c_in

    return make


class _Rows(nn.Module):
    """``(B, C, H, W)`` images as ``(B, C * H, W)`` sequences: each column a time step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1, 2)


def _conv1d(
    channels: Sequence[int], strides: Sequence[int], kernel: int = 3
) -> Callable[[str, InputShape], tuple[nn.Module, int]]:
    def make(activation: str, shape: InputShape) -> tuple[nn.Module, int]:
        layers: list[nn.Module] = [_Rows()]
        c_in = shape[0] * shape[1]
        for c, s in zip(channels, strides):
            layers += [nn.Conv1d(c_in, c, kernel, stride=s, padding=kernel // 2), _act(activation)]
            c_in = c
        layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten()]
        return nn.Sequential(*layers), c_in

    return make


class _ResBlock(nn.Module):
    def __init__(self, channels: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act1 = _act(activation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act2 = _act(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(x + self.conv2(self.act1(self.conv1(x))))


def _resnet_tiny(activation: str, shape: InputShape) -> tuple[nn.Module, int]:
    body = nn.Sequential(
        nn.Conv2d(shape[0], 12, 3, padding=1),
        _act(activation),
        _ResBlock(12, activation),
        nn.Conv2d(12, 16, 3, stride=2, padding=1),
        _act(activation),
        _ResBlock(16, activation),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return body, 16


class _Positions(nn.Embedding):
    """Learned position embeddings added to the tokens (one row per token): an embedding
    table, so that every reader takes it for one."""

    def __init__(self, n_tokens: int, dim: int) -> None:
        super().__init__(n_tokens, dim)
        with torch.no_grad():
            self.weight.copy_(torch.randn(n_tokens, dim) * 0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + self.weight


class _TinyViT(nn.Module):
    """Patch-embedding conv, learned positions, one pre-norm transformer layer, mean pooling."""

    def __init__(self, activation: str, shape: InputShape, dim: int = 32, patch: int = 2) -> None:
        super().__init__()
        if shape[1] % patch or shape[2] % patch:
            raise SNEError(f"vit_tiny: input {shape} is not divisible into {patch}x{patch} patches")
        self.patch = nn.Conv2d(shape[0], dim, patch, stride=patch)
        n_tokens = (shape[1] // patch) * (shape[2] // patch)
        self.pos = _Positions(n_tokens, dim)
        self.encoder = nn.TransformerEncoderLayer(
            dim,
            nhead=4,
            dim_feedforward=2 * dim,
            dropout=0.0,
            activation=_act(activation),
            batch_first=True,
            norm_first=True,
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.pos(self.patch(x).flatten(2).transpose(1, 2))
        return self.norm(self.encoder(tokens)).mean(dim=1)


def _vit_tiny(activation: str, shape: InputShape) -> tuple[nn.Module, int]:
    return _TinyViT(activation, shape), 32


def _specs() -> dict[str, ArchSpec]:
    s3 = (1, 2, 2)
    specs = [
        ArchSpec(
            "small_cnn",
            _cnn((16, 16, 16), s3),
            description="Small CNN Zoo style: 3 conv 3x3 x16 (strides 1,2,2), GAP, dense",
        ),
        ArchSpec("cnn_w8", _cnn((8, 8, 8), s3), description="small_cnn with 8 channels"),
        ArchSpec("cnn_w24", _cnn((24, 24, 24), s3), description="small_cnn with 24 channels"),
        ArchSpec("cnn_d2", _cnn((16, 16), (2, 2)), description="2 conv layers of 16"),
        ArchSpec("cnn_d4", _cnn((16, 16, 16, 16), (1, 2, 1, 2)), description="4 conv layers of 16"),
        ArchSpec(
            "cnn_k5", _cnn((16, 16, 16), s3, kernel=5), description="small_cnn with 5x5 kernels"
        ),
        ArchSpec(
            "cnn_bn",
            _cnn((16, 16, 16), s3, batchnorm=True),
            vmappable=False,
            description="small_cnn with BatchNorm after each conv",
        ),
        ArchSpec(
            "conv1d",
            _conv1d((24, 24), (1, 2)),
            description="image rows as channels, columns as time: 2 Conv1d (k3) x24, mean, dense",
        ),
        ArchSpec("mlp", _mlp((32, 32)), description="MLP 64-32-32-10"),
        ArchSpec("mlp_w16", _mlp((16, 16)), description="MLP 64-16-16-10"),
        ArchSpec("mlp_w64", _mlp((64, 64)), description="MLP 64-64-64-10"),
        ArchSpec("mlp_d1", _mlp((32,)), description="MLP 64-32-10"),
        ArchSpec("mlp_d3", _mlp((32, 32, 32)), description="MLP 64-32-32-32-10"),
        ArchSpec(
            "resnet_tiny",
            _resnet_tiny,
            description="stem conv, residual block, strided conv, residual block, GAP",
        ),
        ArchSpec(
            "vit_tiny",
            _vit_tiny,
            vmappable=False,
            description="2x2 patch conv, positions, 1 transformer layer (4 heads), mean",
        ),
    ]
    return {s.name: s for s in specs}


ARCHITECTURES: dict[str, ArchSpec] = _specs()
"""The named architectures (see each spec's ``description``)."""


def build(
    name: str,
    activation: str = "relu",
    *,
    input_shape: InputShape = (1, 8, 8),
    num_classes: int = 10,
    dropout: float = 0.0,
) -> ZooNet:
    """A fresh (torch-default initialised) network of architecture ``name``."""
    spec = lookup(ARCHITECTURES, name, "architecture")
    body, features = spec.make_body(activation, tuple(input_shape))  # type: ignore[arg-type]
    return ZooNet(body, features, num_classes, dropout=dropout)


def to_network_weights(net: nn.Module, *, source: str = "<zoo>") -> NetworkWeights:
    """``net`` read by :func:`sne_plugin.read_weights` (strict), named ``source``: the one
    reader, so a zoo network gets the layers and the ``is_chain`` answer it gets anywhere."""
    return replace(read_module(net), source=source)
