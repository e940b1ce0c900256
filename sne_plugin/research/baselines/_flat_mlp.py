"""An MLP on the flattened, standardised weights; one architecture per zoo."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sne_plugin.errors import SNEError
from sne_plugin.research.baselines._common import spec_text
from sne_plugin.research.baselines._torch_base import Collate, TorchBaseline, mlp
from sne_plugin.weights import NetworkSpec, NetworkWeights

__all__ = ["FlatMLPRegressor"]


class _FlatMLP(nn.Module):
    def __init__(self, n_in: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp([n_in, *hidden, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class FlatMLPRegressor(TorchBaseline):
    """An MLP on all parameters of a network, flattened and standardised per position.

    Same-architecture zoos only: ``fit`` records the shapes of the first network
    (``spec_``); any network whose layer kinds or shapes differ (names may), in ``fit`` or
    ``predict``, raises :class:`~sne_plugin.SNEError` naming its index, the expected and
    the arrived shapes.
    Each input position is standardised with the training mean and standard deviation.
    Training: Adam on minibatches, early stopping on a held-out ``validation_fraction``
    (best epoch's weights restored; with fewer than 2 held-out networks, no split).

    Parameters
    ----------
    hidden:
        Widths of the hidden layers (ReLU between).
    epochs, batch_size, lr, weight_decay, validation_fraction, patience:
        Training (Adam); ``patience`` epochs without a better validation loss stop it.
    loss:
        ``"auto"`` (bce with a sigmoid output when every target is in [0, 1], else mse),
        ``"bce"`` or ``"mse"`` (targets standardised internally).
    device:
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``. The fitted module is
        kept on the CPU, so a pickled model loads on CPU-only hosts.
    random_state:
        Seeds the initialisation, the split and the shuffling: same seed and data, same
        predictions.
    verbose:
        Show a progress bar over epochs.

    Examples
    --------
    >>> import torch
    >>> from sne_plugin import NetworkWeights
    >>> from sne_plugin.research.baselines import FlatMLPRegressor
    >>> g = torch.Generator().manual_seed(0)
    >>> nets = [NetworkWeights.from_pairs([(torch.randn(8, 4, generator=g) * s, None),
    ...                                    (torch.randn(2, 8, generator=g), None)])
    ...         for s in torch.linspace(0.1, 1.0, 16).tolist()]
    >>> acc = torch.linspace(0.2, 0.9, 16).tolist()
    >>> model = FlatMLPRegressor(hidden=(16,), epochs=3, random_state=0).fit(nets, acc)
    >>> model.predict(nets[:2]).shape, model.loss_
    ((2,), 'bce')
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (64, 64),
        epochs: int = 200,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.15,
        patience: int = 20,
        loss: str = "auto",
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.hidden = hidden
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
        self.spec_: NetworkSpec = nets[0].spec
        flat = self._flatten(nets)
        self.n_features_in_ = flat.shape[1]
        self.x_mean_ = flat.mean(axis=0)
        std = flat.std(axis=0)
        self.x_scale_ = np.where(std > 0, std, 1.0).astype(np.float32)

    def _encode(self, nets: Sequence[NetworkWeights]) -> Collate:
        flat = torch.as_tensor((self._flatten(nets) - self.x_mean_) / self.x_scale_)

        def collate(idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
            return (flat[torch.as_tensor(idx)].to(device),)

        return collate

    def _build_module(self) -> nn.Module:
        return _FlatMLP(self.n_features_in_, self.hidden)

    def _flatten(self, nets: Sequence[NetworkWeights]) -> np.ndarray:
        for i, net in enumerate(nets):
            if _shapes(net.spec) != _shapes(self.spec_):
                raise SNEError(
                    f"X[{i}] ({net.source}): FlatMLPRegressor needs one architecture; "
                    f"expected shapes {spec_text(self.spec_)}, got {spec_text(net.spec)}"
                )
        return np.stack([net.flatten() for net in nets]).astype(np.float32)


def _shapes(spec: NetworkSpec) -> tuple[tuple[object, ...], ...]:
    """What must match for flat vectors to line up: kinds and shapes (names may differ)."""
    return tuple((layer.kind, layer.weight_shape, layer.bias_shape) for layer in spec.layers)
