"""DeepSets ablation: every scalar weight is one set element; no hierarchy, no attention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from sne_plugin.research.baselines._torch_base import Collate, TorchBaseline, mlp
from sne_plugin.weights import LayerKind, NetworkWeights

__all__ = ["N_ELEMENT_FEATURES", "DeepSetsRegressor", "element_table"]

_KINDS = tuple(LayerKind)
N_STATIC = len(_KINDS) + 2  # kind one-hot, normalised depth, is_bias
N_ELEMENT_FEATURES = 1 + N_STATIC


@dataclass
class _Elements:
    """One network as a set: its values, each value's tensor index, and one row per tensor."""

    values: torch.Tensor  # (n_params,) float32
    tensor_index: torch.Tensor  # (n_params,) int32
    table: torch.Tensor  # (n_tensors, N_STATIC) float32


def element_table(net: NetworkWeights) -> torch.Tensor:
    """Per tensor (weights and biases in layer order): kind one-hot, depth in [0, 1], is_bias."""
    rows = []
    last = max(1, len(net) - 1)
    for depth, layer in enumerate(net.layers):
        onehot = [float(layer.kind is kind) for kind in _KINDS]
        rows.append([*onehot, depth / last, 0.0])
        if layer.bias is not None:
            rows.append([*onehot, depth / last, 1.0])
    return torch.tensor(rows, dtype=torch.float32)


def _elements(net: NetworkWeights) -> _Elements:
    tensors = list(net.tensors())
    sizes = torch.tensor([t.numel() for t in tensors])
    index = torch.repeat_interleave(torch.arange(len(tensors), dtype=torch.int32), sizes)
    values = torch.as_tensor(net.flatten())
    return _Elements(values, index, element_table(net))


class _DeepSets(nn.Module):
    """phi per element, masked mean and max over each network's elements, rho to one output."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.phi = mlp([N_ELEMENT_FEATURES, *([width] * depth)])
        self.rho = mlp([2 * width, *([width] * (depth - 1)), 1])

    def forward(
        self, values: torch.Tensor, index: torch.Tensor, table: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        # values, index, mask: (B, N); table: (B, T, N_STATIC)
        static = torch.gather(table, 1, index.unsqueeze(-1).expand(-1, -1, table.shape[-1]))
        h = self.phi(torch.cat([values.unsqueeze(-1), static], dim=-1))  # (B, N, width)
        keep = mask.unsqueeze(-1)
        mean = (h * keep).sum(1) / keep.sum(1).clamp(min=1)
        peak = h.masked_fill(~keep, float("-inf")).amax(1)
        return self.rho(torch.cat([mean, peak], dim=-1)).squeeze(-1)


class DeepSetsRegressor(TorchBaseline):
    """DeepSets over all scalar weights of a network: the "no hierarchy, no attention" ablation.

    Each scalar parameter is one set element with features (standardised value, layer-kind
    one-hot over :class:`~sne_plugin.LayerKind`, layer depth normalised to [0, 1], is-bias
    flag). A per-element MLP ``phi`` embeds it; masked mean and max pooling over all of a
    network's elements (networks of a minibatch padded together) feed an MLP ``rho`` that
    predicts the target. Works across architectures. Memory grows with
    ``batch_size * max_params * width``: lower ``batch_size`` for large networks.

    Parameters
    ----------
    width, depth:
        Hidden width of ``phi`` and ``rho``, and the number of layers of ``phi``
        (``rho`` has ``depth`` linear layers too).
    epochs, batch_size, lr, weight_decay, validation_fraction, patience:
        Training (Adam); early stopping on a held-out share (best epoch restored).
    loss:
        ``"auto"`` (bce with a sigmoid output when every target is in [0, 1], else mse),
        ``"bce"`` or ``"mse"``.
    device:
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``; the fitted module
        stays on the CPU, so a pickled model loads on CPU-only hosts.
    random_state:
        Seeds initialisation, split and shuffling.
    verbose:
        Show a progress bar over epochs.

    Examples
    --------
    >>> import torch
    >>> from sne_plugin import NetworkWeights
    >>> from sne_plugin.research.baselines import DeepSetsRegressor
    >>> g = torch.Generator().manual_seed(0)
    >>> nets = [NetworkWeights.from_pairs([(torch.randn(8, w, generator=g) * s, None),
    ...                                    (torch.randn(2, 8, generator=g), torch.zeros(2))])
    ...         for s, w in zip(torch.linspace(0.1, 1.0, 16).tolist(), [3, 5] * 8)]
    >>> acc = torch.linspace(0.2, 0.9, 16).tolist()
    >>> model = DeepSetsRegressor(width=8, epochs=2, random_state=0).fit(nets, acc)
    >>> model.predict(nets[:2]).shape
    (2,)
    """

    def __init__(
        self,
        width: int = 32,
        depth: int = 2,
        epochs: int = 100,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.15,
        patience: int = 15,
        loss: str = "auto",
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.width = width
        self.depth = depth
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.loss = loss
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _fit_inputs(self, nets: Sequence[NetworkWeights]) -> None:
        values = np.concatenate([net.flatten() for net in nets]).astype(np.float64)
        self.value_mean_ = float(values.mean())
        std = float(values.std())
        self.value_scale_ = std if std > 0 else 1.0

    def _encode(self, nets: Sequence[NetworkWeights]) -> Collate:
        sets = [_elements(net) for net in nets]

        def collate(idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
            chosen = [sets[i] for i in idx]
            values = pad_sequence([s.values for s in chosen], batch_first=True)
            index = pad_sequence([s.tensor_index for s in chosen], batch_first=True)
            table = pad_sequence([s.table for s in chosen], batch_first=True)
            lengths = torch.tensor([len(s.values) for s in chosen])
            mask = torch.arange(values.shape[1]) < lengths.unsqueeze(1)
            values = (values - self.value_mean_) / self.value_scale_
            batch = (values, index.long(), table, mask)
            return tuple(t.to(device) for t in batch)

        return collate

    def _build_module(self) -> nn.Module:
        return _DeepSets(self.width, self.depth)
