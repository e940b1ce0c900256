"""NFN baselines (Zhou et al. 2023) through the PyPI ``nfn`` package, as sklearn regressors.

:class:`NFNRegressor` builds an invariant neural functional: a few ``NPLinear`` (``mode="np"``)
or ``HNPLinear`` (``mode="hnp"``) layers with ReLU, the matching invariant pooling and an MLP
head. ``nfn`` handles MLPs and CNNs whose convolutions end in global pooling before one dense
layer: every layer a conv or dense layer with a bias, applied in a chain. Hidden widths may
differ between networks (they are the permuted dimensions); the number of layers, kernel
sizes, inputs and outputs may not. :func:`nfn_incompatibility` says why a set of networks
does not fit. ``nfn`` is imported on first use.

>>> import torch
>>> from sne_plugin import NetworkWeights
>>> g = torch.Generator().manual_seed(0)
>>> nets = [NetworkWeights.from_pairs([(torch.randn(8, 4, generator=g) * s, torch.zeros(8)),
...                                    (torch.randn(2, 8, generator=g), torch.zeros(2))])
...         for s in torch.linspace(0.1, 1.0, 12).tolist()]
>>> model = NFNRegressor(epochs=2, random_state=0).fit(nets, [0.1 * i for i in range(1, 13)])
>>> model.predict(nets[:3]).shape
(3,)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sne_plugin._imports import optional_import
from sne_plugin.errors import SNEError
from sne_plugin.research.baselines._torch_base import Collate, TorchBaseline
from sne_plugin.weights import LayerKind, NetworkWeights

__all__ = ["NFNRegressor", "nfn_incompatibility"]

_MODES = ("np", "hnp")


def _layout(net: NetworkWeights) -> tuple[Any, ...] | str:
    """What must match between networks for one NFN: layer kinds, kernels, input, output."""
    if not net.is_chain:
        return "not a plain conv/dense chain"
    kinds = []
    for layer in net.layers:
        if layer.kind not in (LayerKind.CONV2D, LayerKind.DENSE):
            return f"layer {layer.name!r} is {layer.kind.value}, not conv2d or dense"
        kinds.append((layer.kind.value, tuple(layer.weight.shape[2:])))
    first, last = net.layers[0].weight.shape, net.layers[-1].weight.shape
    return (tuple(kinds), int(first[1]), int(last[0]))


def nfn_incompatibility(nets: Sequence[NetworkWeights]) -> str | None:
    """``None`` if one NFN can take all ``nets``, else the reason it cannot.

    >>> import torch
    >>> from sne_plugin import NetworkWeights
    >>> a = NetworkWeights.from_pairs([(torch.ones(3, 4), None), (torch.ones(2, 3), None)])
    >>> b = NetworkWeights.from_pairs([(torch.ones(5, 4), None), (torch.ones(2, 5), None)])
    >>> c = NetworkWeights.from_pairs([(torch.ones(2, 4), None)])
    >>> nfn_incompatibility([a, b]) is None, nfn_incompatibility([a, c])
    (True, 'networks differ in layer count, kernel sizes, inputs or outputs')
    """
    layouts = {_layout(n) for n in nets}
    bad = [x for x in layouts if isinstance(x, str)]
    if bad:
        return str(bad[0])
    if len(layouts) > 1:
        return "networks differ in layer count, kernel sizes, inputs or outputs"
    return None


def _pairs(net: NetworkWeights) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for layer in net.layers:
        w = layer.weight.detach().float()
        b = layer.bias if layer.bias is not None else torch.zeros(w.shape[0])
        out.append((w, b.detach().float()))
    return out


class _Invariant(nn.Module):
    """NP/HNP equivariant layers with ReLU, invariant pooling, then an MLP head."""

    def __init__(
        self, example: list[tuple[torch.Tensor, torch.Tensor]], mode: str, hidden: int, depth: int
    ) -> None:
        super().__init__()
        nfn_common = optional_import("nfn.common", extra="bench")
        nfn_layers = optional_import("nfn.layers", extra="bench")
        feats = nfn_common.WeightSpaceFeatures(*_stack([example]))
        spec = nfn_common.network_spec_from_wsfeat(feats)
        linear = nfn_layers.NPLinear if mode == "np" else nfn_layers.HNPLinear
        pool = nfn_layers.NPPool if mode == "np" else nfn_layers.HNPPool
        layers: list[nn.Module] = []
        c_in = 1
        for _ in range(depth):
            layers += [linear(spec, c_in, hidden), nfn_layers.TupleOp(nn.ReLU())]
            c_in = hidden
        self.n_layers = len(example)
        self.body = nn.Sequential(*layers, pool(spec), nn.Flatten(start_dim=-2))
        n_out = pool.get_num_outs(spec) * hidden
        self.head = nn.Sequential(nn.Linear(n_out, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self._wsf = nfn_common.WeightSpaceFeatures

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        ws, bs = tensors[: self.n_layers], tensors[self.n_layers :]
        return self.head(self.body(self._wsf(ws, bs))).squeeze(-1)


def _stack(
    nets: list[list[tuple[torch.Tensor, torch.Tensor]]],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer, ``(batch, 1, ...)`` weights and biases as ``nfn`` expects them."""
    n_layers = len(nets[0])
    ws = [torch.stack([n[i][0] for n in nets]).unsqueeze(1) for i in range(n_layers)]
    bs = [torch.stack([n[i][1] for n in nets]).unsqueeze(1) for i in range(n_layers)]
    return ws, bs


class NFNRegressor(TorchBaseline):
    """Neural functional (NP or HNP) regressor from weights to a property.

    Parameters: ``mode`` ``"np"`` or ``"hnp"``; ``hidden`` channels and ``depth`` equivariant
    layers; training as the other torch baselines (Adam, early stopping on a validation
    share). Each weight and bias tensor is standardised by its layer's training mean and
    standard deviation (scalars, so permutation symmetry is kept).
    """

    def __init__(
        self,
        mode: str = "np",
        hidden: int = 16,
        depth: int = 2,
        epochs: int = 50,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.15,
        patience: int = 10,
        loss: str = "auto",
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.mode = mode
        self.hidden = hidden
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

    def _check_params(self) -> None:
        super()._check_params()
        if self.mode not in _MODES:
            raise SNEError(f"expected mode in {_MODES}, but got mode={self.mode!r}")

    def _read(self, X: Any) -> list[NetworkWeights]:
        nets = super()._read(X)
        reference = [self.example_] if hasattr(self, "example_") else []
        reason = nfn_incompatibility(reference + nets)
        if reason:
            raise SNEError(f"NFNRegressor cannot take these networks: {reason}")
        return nets

    def _fit_inputs(self, nets: Sequence[NetworkWeights]) -> None:
        self.example_ = nets[0]
        ws, bs = _stack([_pairs(n) for n in nets])
        self.scales_ = [(float(t.mean()), float(t.std()) or 1.0) for t in ws + bs]

    def _encode(self, nets: Sequence[NetworkWeights]) -> Collate:
        ws, bs = _stack([_pairs(n) for n in nets])
        tensors = [(t - m) / s for t, (m, s) in zip(ws + bs, self.scales_)]

        def collate(idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
            i = torch.as_tensor(idx)
            return tuple(t[i].to(device) for t in tensors)

        return collate

    def _build_module(self) -> nn.Module:
        return _Invariant(_pairs(self.example_), self.mode, self.hidden, self.depth)
