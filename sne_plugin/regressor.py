"""``SNERegressor``: a scikit-learn regressor from network weights to a property (accuracy)."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import torch
from scipy.stats import kendalltau
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.validation import check_is_fitted

from sne_plugin._device import resolve_device
from sne_plugin._inputs import as_networks, check_targets
from sne_plugin.encoder.model import SNENet
from sne_plugin.encoder.permute import random_flat_index
from sne_plugin.encoder.plan import make_batch
from sne_plugin.errors import SNEError
from sne_plugin.weights import NetworkSpec, NetworkWeights

__all__ = ["SNERegressor"]

_LOSSES = ("bce", "mse")


@dataclass
class _Data:
    """Networks prepared for the encoder: shapes, flat float32 vectors, chain flags."""

    specs: list[NetworkSpec]
    flats: list[torch.Tensor]
    chains: list[bool]

    def __len__(self) -> int:
        return len(self.specs)

    def subset(self, idx: np.ndarray) -> _Data:
        return _Data(
            [self.specs[i] for i in idx],
            [self.flats[i] for i in idx],
            [self.chains[i] for i in idx],
        )


class SNERegressor(RegressorMixin, BaseEstimator):
    """Predict a network's generalization (or any property) from its weights alone.

    ``X`` is a list of networks: torch modules, state dicts, paths to ONNX files or torch
    checkpoints, sequences of ``(weight, bias)`` pairs, or :class:`~sne_plugin.NetworkWeights`
    (see :func:`sne_plugin.read_weights`). Networks may differ in architecture and size.

    Parameters
    ----------
    chunk_size, width, heads, max_set:
        Encoder shape: elements per chunk, embedding width, attention heads, and the most
        chunks pooled in one set (larger tensors are pooled hierarchically).
    epochs, batch_size, lr, weight_decay:
        Training (AdamW with a cosine schedule).
    invariance_weight:
        Weight ``v`` of the logit-invariance regulariser ``v/2 * (f(x) - f(gx))^2`` for random
        function-preserving permutations ``g`` of hidden units (chain networks only).
    validation_fraction, patience:
        A held-out share for early stopping on Kendall's tau (0 disables), and how many
        epochs without improvement end training.
    loss:
        ``"bce"`` (targets in [0, 1], sigmoid output; the default, for accuracies) or
        ``"mse"`` (any real targets, standardised internally).
    chunk_position:
        Add a sinusoidal encoding of each chunk's index within its tensor.
    tensor_stats:
        Add each tensor's summary statistics (mean, std, min, max, mean |w|) to its vector.
    max_chunks_per_pass:
        How many chunks go through the chunk encoder at once: bounds the working memory
        of very large networks (and, while training, enables recomputation).
    device:
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
    random_state, verbose, warm_start:
        Seed (same seed, data and machine: same predictions); a progress bar with epoch,
        loss and validation tau; continue from the fitted state on the next ``fit``.

    Examples
    --------
    >>> import torch
    >>> from sne_plugin import NetworkWeights, SNERegressor
    >>> g = torch.Generator().manual_seed(0)
    >>> nets = [NetworkWeights.from_pairs([(torch.randn(8, 4, generator=g) * s, None),
    ...                                    (torch.randn(2, 8, generator=g), None)])
    ...         for s in torch.linspace(0.1, 1.0, 16).tolist()]
    >>> acc = torch.linspace(0.2, 0.9, 16).tolist()
    >>> model = SNERegressor(width=16, epochs=3, random_state=0).fit(nets, acc)
    >>> model.predict(nets[:2]).shape
    (2,)
    """

    def __init__(
        self,
        chunk_size: int = 32,
        width: int = 32,
        heads: int = 2,
        max_set: int = 256,
        epochs: int = 80,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        invariance_weight: float = 0.1,
        validation_fraction: float = 0.15,
        patience: int = 20,
        loss: str = "bce",
        chunk_position: bool = True,
        tensor_stats: bool = True,
        max_chunks_per_pass: int = 8192,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
        warm_start: bool = False,
    ) -> None:
        self.chunk_size = chunk_size
        self.width = width
        self.heads = heads
        self.max_set = max_set
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.invariance_weight = invariance_weight
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.loss = loss
        self.chunk_position = chunk_position
        self.tensor_stats = tensor_stats
        self.max_chunks_per_pass = max_chunks_per_pass
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any) -> SNERegressor:
        """Train on networks ``X`` and targets ``y``; returns ``self``."""
        self._check_params()
        data, target = self._prepare(X, y)
        if not (self.warm_start and hasattr(self, "module_")):
            self._initialize(data, target)
        self._train(data, target, self.epochs, early_stopping=True)
        return self

    def partial_fit(self, X: Any, y: Any) -> SNERegressor:
        """One more epoch over ``(X, y)``, initializing on the first call (online learning)."""
        self._check_params()
        data, target = self._prepare(X, y)
        if not hasattr(self, "module_"):
            self._initialize(data, target)
        self._train(data, target, 1, early_stopping=False)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted property of each network in ``X`` (float64 array)."""
        out = self._forward_all(X, embed=False)
        if self.loss == "bce":
            return 1.0 / (1.0 + np.exp(-out))
        return out * self.y_std_ + self.y_mean_

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the embeddings of ``X``."""
        return self.fit(X, y).transform(X)

    def transform(self, X: Any) -> np.ndarray:
        """Network embeddings, ``(n_networks, width)``, for use in other estimators."""
        return self._forward_all(X, embed=True)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted regressor to ``path`` (joblib); load it with :meth:`load`."""
        check_is_fitted(self, "module_")
        joblib.dump(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SNERegressor:
        """Read a regressor written by :meth:`save`, on any machine (CUDA or not)."""
        if not os.path.isfile(path):
            raise SNEError(
                f"expected a saved SNERegressor file, but {os.fspath(path)!r} does not exist"
            )
        try:
            obj = joblib.load(path)
        except SNEError:
            raise
        except Exception as exc:
            raise SNEError(
                f"{os.fspath(path)!r} is not a readable saved SNERegressor ({exc})"
            ) from None
        if not isinstance(obj, cls):
            raise SNEError(
                f"{os.fspath(path)!r} holds a {type(obj).__name__}, expected an SNERegressor"
            )
        return obj

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        # transform() gives embeddings; it is a feature extractor too, not a float transformer
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags

    # ------------------------------------------------------------------ preparation
    def _check_params(self) -> None:
        if self.loss not in _LOSSES:
            raise SNEError(f"loss must be one of {_LOSSES}, but got loss={self.loss!r}")
        for name in (
            "chunk_size",
            "width",
            "heads",
            "max_set",
            "epochs",
            "batch_size",
            "max_chunks_per_pass",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SNEError(f"{name} must be a positive integer, but got {name}={value!r}")
        if self.width % self.heads:
            raise SNEError(
                f"width must be a multiple of heads, but got width={self.width}, heads={self.heads}"
            )
        if not 0 <= self.validation_fraction < 1:
            raise SNEError(
                f"validation_fraction must be in [0, 1), but got {self.validation_fraction!r}"
            )
        if self.invariance_weight < 0 or self.lr <= 0 or self.weight_decay < 0:
            raise SNEError("invariance_weight and weight_decay must be >= 0 and lr > 0")

    def _prepare(self, X: Any, y: Any) -> tuple[_Data, np.ndarray]:
        data = self._as_data(X)
        target = check_targets(y, len(data), loss=self.loss)
        return data, target

    @staticmethod
    def _as_data(X: Any) -> _Data:
        nets = as_networks(X)
        if not nets:
            raise SNEError("expected at least one network in X, got an empty list")
        return _Data(
            [n.spec for n in nets],
            [_flat(net, i) for i, net in enumerate(nets)],
            [n.is_chain for n in nets],
        )

    def _initialize(self, data: _Data, target: np.ndarray) -> None:
        """Fitted state from scratch: scales, module, optimizer, RNG."""
        self.device_ = resolve_device(self.device)
        self._rng = check_random_state(self.random_state)
        all_values = torch.cat(data.flats)
        self.weight_scale_ = float(all_values.std()) if all_values.numel() > 1 else 1.0
        self.weight_scale_ = self.weight_scale_ if self.weight_scale_ > 0 else 1.0
        self.y_mean_ = float(target.mean()) if self.loss == "mse" else 0.0
        self.y_std_ = float(target.std()) or 1.0 if self.loss == "mse" else 1.0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self._rng.randint(2**31 - 1)))
            self.module_ = SNENet(hidden=self.width, **self._encoder_config()).to(self.device_)
        self.optimizer_ = torch.optim.AdamW(
            self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        self.history_: list[dict[str, float]] = []
        self.n_epochs_ = 0
        self._sne_version = _version()

    def _encoder_config(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "heads": self.heads,
            "chunk_size": self.chunk_size,
            "max_set": self.max_set,
            "chunk_position": self.chunk_position,
            "tensor_stats": self.tensor_stats,
            "max_chunks_per_pass": self.max_chunks_per_pass,
        }

    # ------------------------------------------------------------------ training
    def _train(self, data: _Data, target: np.ndarray, epochs: int, *, early_stopping: bool) -> None:
        train_idx, val_idx = self._split(len(data), early_stopping)
        y_t = torch.as_tensor((target - self.y_mean_) / self.y_std_, dtype=torch.float32)
        steps = epochs * math.ceil(len(train_idx) / self.batch_size)
        schedule = _cosine(self.optimizer_, steps, self.lr) if early_stopping else None
        best: tuple[float, dict[str, Any] | None] = (-math.inf, None)
        stale = 0
        bar = _progress(epochs, self.verbose)
        for _ in range(epochs):
            loss = self._epoch(data, y_t, train_idx, schedule)
            self._recalibrate(data, train_idx)
            tau = self._val_tau(data, target, val_idx)
            self.n_epochs_ += 1
            self.history_.append({"epoch": self.n_epochs_, "loss": loss, "val_tau": tau})
            if bar is not None:
                bar.update(1)
                shown = {"loss": f"{loss:.4f}"}
                if len(val_idx):  # no validation split: no tau to show
                    shown["val_tau"] = f"{tau:.3f}"
                bar.set_postfix(shown)
            if not math.isnan(tau) and tau > best[0]:
                best, stale = (tau, copy.deepcopy(self.module_.state_dict())), 0
            else:
                stale += 1
            if len(val_idx) and stale >= self.patience:
                break
        if bar is not None:
            bar.close()
        if best[1] is not None:
            self.module_.load_state_dict(best[1])
            self.best_val_tau_ = best[0]

    @torch.no_grad()
    def _recalibrate(self, data: _Data, idx: np.ndarray) -> None:
        """Exact standardisation statistics for the encoder as it now is.

        Running averages of minibatch statistics lag behind an encoder that is still
        learning, and the differences between networks are small next to the shift: stale
        statistics left predictions miscalibrated (all near 0 on a zoo whose accuracies
        reach 0.95) although they ranked well. So after every epoch the statistics are
        recomputed on (up to 512 of) the training networks.
        """
        sample = idx if len(idx) <= 512 else np.sort(self._rng.choice(idx, 512, replace=False))
        if len(sample) < 2:
            return
        self.module_.eval()
        parts = []
        for lo in range(0, len(sample), 64):
            sub = data.subset(sample[lo : lo + 64])
            batch = make_batch(sub.specs, self.chunk_size, self.max_set).to(self.device_)
            flat = torch.cat(sub.flats).to(self.device_) / self.weight_scale_
            parts.append(self.module_.encoder(batch, flat).float())
        self.module_.standardize.set_statistics(torch.cat(parts))

    def _split(self, n: int, early_stopping: bool) -> tuple[np.ndarray, np.ndarray]:
        order = self._rng.permutation(n)
        n_val = round(self.validation_fraction * n) if early_stopping else 0
        if n_val < 4 or n - n_val < 2:
            return order, order[:0]
        return order[n_val:], order[:n_val]

    def _epoch(self, data: _Data, y_t: torch.Tensor, train_idx: np.ndarray, schedule: Any) -> float:
        self.module_.train()
        order = self._rng.permutation(train_idx)
        total, count = 0.0, 0
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            loss = self._step(data, y_t, idx)
            if schedule is not None:
                schedule.step()
            total += loss * len(idx)
            count += len(idx)
        return total / max(count, 1)

    def _step(self, data: _Data, y_t: torch.Tensor, idx: np.ndarray) -> float:
        sub = data.subset(idx)
        keep, permuted = self._permuted(sub) if self.invariance_weight > 0 else ([], None)
        if permuted is not None:
            sub = _Data(
                sub.specs + permuted.specs, sub.flats + permuted.flats, sub.chains + permuted.chains
            )
        out = self._forward(sub)
        n = len(idx)
        target = y_t[idx].to(self.device_)
        loss = self._task_loss(out[:n], target)
        if permuted is not None:
            original = out[torch.as_tensor(keep, device=out.device)]
            loss = loss + self.invariance_weight * 0.5 * (original - out[n:]).pow(2).mean()
        self.optimizer_.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.module_.parameters(), 1.0)
        self.optimizer_.step()
        return float(loss.detach())

    def _task_loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss == "bce":
            return torch.nn.functional.binary_cross_entropy_with_logits(out, target)
        return torch.nn.functional.mse_loss(out, target)

    def _permuted(self, sub: _Data) -> tuple[list[int], _Data | None]:
        """Randomly permuted copies of some chain networks of a minibatch, and which ones."""
        keep = [i for i, chain in enumerate(sub.chains) if chain][: self._n_invariance(len(sub))]
        if not keep:
            return [], None
        flats = []
        for i in keep:
            index, _ = random_flat_index(sub.specs[i], self._rng)
            flats.append(sub.flats[i][torch.from_numpy(index)])
        return keep, _Data([sub.specs[i] for i in keep], flats, [True] * len(keep))

    @staticmethod
    def _n_invariance(n: int) -> int:
        # The regulariser runs on a quarter of each minibatch: a quarter of the extra cost,
        # the same signal in expectation (minibatches are reshuffled every epoch).
        return max(1, n // 4)

    def _forward(self, data: _Data) -> torch.Tensor:
        batch = make_batch(data.specs, self.chunk_size, self.max_set).to(self.device_)
        flat = torch.cat(data.flats).to(self.device_, non_blocking=True) / self.weight_scale_
        out: torch.Tensor = self.module_(batch, flat)
        return out

    def _val_tau(self, data: _Data, target: np.ndarray, val_idx: np.ndarray) -> float:
        if not len(val_idx):
            return math.nan
        pred = self._predict_data(data.subset(val_idx), embed=False)
        tau = kendalltau(pred, target[val_idx]).statistic
        return float(tau)

    # ------------------------------------------------------------------ inference
    def _forward_all(self, X: Any, *, embed: bool) -> np.ndarray:
        check_is_fitted(self, "module_")
        return self._predict_data(self._as_data(X), embed=embed)

    @torch.inference_mode()
    def _predict_data(self, data: _Data, *, embed: bool) -> np.ndarray:
        if self.module_.training:
            self.module_.eval()
        outs = []
        step = max(self.batch_size, 64)
        for lo in range(0, len(data), step):
            sub = data.subset(np.arange(lo, min(lo + step, len(data))))
            batch = make_batch(sub.specs, self.chunk_size, self.max_set).to(self.device_)
            flat = torch.cat(sub.flats).to(self.device_) / self.weight_scale_
            out = self.module_.embed(batch, flat) if embed else self.module_(batch, flat)
            outs.append(out.float().cpu())
        return torch.cat(outs).numpy().astype(np.float64)

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state = dict(state)
        if "module_" in state:
            # Fitted tensors travel on the CPU so that a pickle loads on any host.
            state["module_"] = {k: v.detach().cpu() for k, v in self.module_.state_dict().items()}
            state["optimizer_"] = _optimizer_state_cpu(self.optimizer_)
            state["device_"] = str(self.device_)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved = state.get("_sne_version")
        if saved is not None and saved.split(".")[:2] != _version().split(".")[:2]:
            raise SNEError(
                f"this SNERegressor was saved by sne-plugin {saved}, which is not compatible with "
                f"the installed {_version()}; refit it, or install sne-plugin=={saved}"
            )
        module_state = state.get("module_")
        super().__setstate__(state)
        if isinstance(module_state, dict):
            device = torch.device(state["device_"])
            if device.type == "cuda" and not torch.cuda.is_available():
                device = torch.device("cpu")
            self.device_ = device
            self.module_ = SNENet(hidden=self.width, **self._encoder_config())
            self.module_.load_state_dict(module_state)
            self.module_.to(device)
            opt_state = state["optimizer_"]
            self.optimizer_ = torch.optim.AdamW(
                self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay
            )
            self.optimizer_.load_state_dict(opt_state)


def _flat(net: NetworkWeights, i: int) -> torch.Tensor:
    flat = torch.from_numpy(net.flatten())
    if not bool(torch.isfinite(flat).all()):
        bad = next(
            layer.name
            for layer in net.layers
            if not all(
                bool(torch.isfinite(t).all()) for t in (layer.weight, layer.bias) if t is not None
            )
        )
        raise SNEError(
            f"X[{i}] ({net.source}): weights contain NaN or inf (first in layer {bad!r})"
        )
    return flat


def _optimizer_state_cpu(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    state = optimizer.state_dict()
    return {
        "state": {
            k: {n: (t.cpu() if torch.is_tensor(t) else t) for n, t in v.items()}
            for k, v in state["state"].items()
        },
        "param_groups": state["param_groups"],
    }


def _cosine(
    optimizer: torch.optim.Optimizer, steps: int, lr: float
) -> torch.optim.lr_scheduler.LRScheduler:
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["initial_lr"] = lr
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1), eta_min=lr * 0.02)


def _progress(epochs: int, verbose: bool) -> Any:
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, desc="SNE fit", unit="epoch")


def _version() -> str:
    from sne_plugin import __version__

    return __version__

