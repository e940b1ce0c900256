"""What the torch baselines share: input preparation, a seeded Adam loop with early stopping."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn
from tqdm.auto import tqdm

from sne_plugin._device import resolve_device
from sne_plugin.errors import SNEError
from sne_plugin.research.baselines._common import (
    as_networks,
    check_targets,
    prediction,
    resolve_loss,
    target_scale,
)
from sne_plugin.weights import NetworkWeights

__all__ = ["TorchBaseline"]

Collate = Callable[[np.ndarray, torch.device], tuple[torch.Tensor, ...]]


@dataclass
class _Loop:
    """One training run: the module, how to batch, the targets and the settings."""

    module: nn.Module
    collate: Collate
    target: torch.Tensor
    loss_fn: nn.Module
    device: torch.device
    generator: torch.Generator


class TorchBaseline(RegressorMixin, BaseEstimator):
    """Base of the torch baselines; subclasses store their arguments in ``__init__``.

    Subclasses implement ``_fit_inputs(nets)`` (learn scalers, record shapes),
    ``_encode(nets)`` (networks -> a ``collate(indices, device)`` function) and
    ``_build_module()``. Fitted attributes: ``module_`` (on the CPU, in eval mode),
    ``loss_``, ``y_mean_``/``y_scale_`` (the target scaling for mse), ``n_epochs_``,
    ``best_val_loss_``.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    validation_fraction: float
    patience: int
    loss: str
    device: str
    random_state: int | np.random.RandomState | None
    verbose: bool

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any) -> TorchBaseline:
        """Train on networks ``X`` and targets ``y``; returns ``self``."""
        self._check_params()
        nets = self._read(X)
        self.loss_ = resolve_loss(self.loss, y)
        target = check_targets(y, len(nets), loss=self.loss_)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        self._fit_inputs(nets)
        self._fit_target(target)
        collate = self._encode(nets)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build_module()
        self.module_ = self._train(module, collate, target, rng, seed)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, one float per network."""
        check_is_fitted(self, "module_")
        nets = self._read(X)
        collate = self._encode(nets)
        device = resolve_device(self.device)
        module = copy.deepcopy(self.module_).to(device).eval()
        out = self._forward_all(module, collate, len(nets), device)
        return prediction(out, self.loss_, self.y_mean_, self.y_scale_)

    # ------------------------------------------------------------------ subclass hooks
    def _fit_inputs(self, nets: Sequence[NetworkWeights]) -> None:
        raise NotImplementedError

    def _encode(self, nets: Sequence[NetworkWeights]) -> Collate:
        raise NotImplementedError

    def _build_module(self) -> nn.Module:
        raise NotImplementedError

    # ------------------------------------------------------------------ steps
    def _check_params(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SNEError(f"expected {name} to be an int >= 1, but got {name}={value!r}")
        if not 0 <= self.validation_fraction < 1:
            raise SNEError(
                f"expected 0 <= validation_fraction < 1, but got "
                f"validation_fraction={self.validation_fraction!r}"
            )
        if self.lr <= 0:
            raise SNEError(f"expected lr > 0, but got lr={self.lr!r}")

    def _read(self, X: Any) -> list[NetworkWeights]:
        return as_networks(X)

    def _fit_target(self, target: np.ndarray) -> None:
        self.y_mean_, self.y_scale_ = target_scale(target, self.loss_)

    def _split(self, n: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        n_val = round(self.validation_fraction * n)
        order = rng.permutation(n)
        if n_val < 2 or n - n_val < 1:
            return order, order[:0]
        return order[n_val:], order[:n_val]

    def _train(
        self,
        module: nn.Module,
        collate: Collate,
        target: np.ndarray,
        rng: np.random.RandomState,
        seed: int,
    ) -> nn.Module:
        device = resolve_device(self.device)
        scaled = torch.as_tensor((target - self.y_mean_) / self.y_scale_, dtype=torch.float32)
        loss_fn: nn.Module = nn.BCEWithLogitsLoss() if self.loss_ == "bce" else nn.MSELoss()
        loop = _Loop(
            module.to(device),
            collate,
            scaled.to(device),
            loss_fn,
            device,
            torch.Generator().manual_seed(seed),
        )
        train_idx, val_idx = self._split(len(target), rng)
        best = self._run_epochs(loop, train_idx, val_idx)
        module.load_state_dict(best)
        return module.cpu().eval()

    def _run_epochs(
        self, loop: _Loop, train_idx: np.ndarray, val_idx: np.ndarray
    ) -> dict[str, torch.Tensor]:
        optimizer = torch.optim.Adam(
            loop.module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        best_state, best_loss, stale = _cpu_state(loop.module), np.inf, 0
        bar = tqdm(range(self.epochs), disable=not self.verbose, desc=type(self).__name__)
        self.n_epochs_ = 0
        for _ in bar:
            train_loss = self._epoch(loop, optimizer, train_idx)
            self.n_epochs_ += 1
            val_loss = self._evaluate(loop, val_idx) if len(val_idx) else train_loss
            bar.set_postfix(train=f"{train_loss:.4g}", val=f"{val_loss:.4g}")
            if val_loss < best_loss:
                best_state, best_loss, stale = _cpu_state(loop.module), val_loss, 0
            else:
                stale += 1
                if len(val_idx) and stale >= self.patience:
                    break
        self.best_val_loss_ = float(best_loss)
        return best_state

    def _epoch(self, loop: _Loop, optimizer: torch.optim.Optimizer, idx: np.ndarray) -> float:
        loop.module.train()
        perm = torch.randperm(len(idx), generator=loop.generator).numpy()
        total = 0.0
        for start in range(0, len(idx), self.batch_size):
            batch = idx[perm[start : start + self.batch_size]]
            pred = loop.module(*loop.collate(batch, loop.device))
            loss = loop.loss_fn(pred, loop.target[torch.as_tensor(batch, device=loop.device)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        return total / len(idx)

    @torch.no_grad()
    def _evaluate(self, loop: _Loop, idx: np.ndarray) -> float:
        loop.module.eval()
        out = torch.as_tensor(self._forward_all(loop.module, loop.collate, idx, loop.device))
        target = loop.target[torch.as_tensor(idx, device=loop.device)].cpu()
        return float(loop.loss_fn(out.to(torch.float32), target))

    @torch.no_grad()
    def _forward_all(
        self, module: nn.Module, collate: Collate, idx: np.ndarray | int, device: torch.device
    ) -> np.ndarray:
        indices = np.arange(idx) if isinstance(idx, int) else idx
        outs = [
            module(*collate(indices[s : s + self.batch_size], device)).cpu()
            for s in range(0, len(indices), self.batch_size)
        ]
        return torch.cat(outs).to(torch.float64).numpy()


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
