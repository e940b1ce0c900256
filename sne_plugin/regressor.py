"""``SNERegressor``: a scikit-learn regressor from network weights to a property (accuracy)."""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.validation import check_is_fitted

from sne_plugin._device import free_device_memory, is_out_of_memory, resolve_device
from sne_plugin._inputs import (
    LOSSES,
    check_targets,
    prediction,
    resolve_loss,
    target_scale,
)
from sne_plugin._losses import RANKING_LOSSES, check_groups, grouped_tau, pairwise_logistic
from sne_plugin._persist import _TYPE_TABLE, load_regressor, save_regressor
from sne_plugin._side import SideScaler
from sne_plugin._strict import read_networks
from sne_plugin._trees import TreeEnsemble
from sne_plugin.encoder.model import SNEEncoder, SNENet
from sne_plugin.encoder.permute import random_flat_index
from sne_plugin.encoder.plan import Batch, make_batch
from sne_plugin.encoder.stats import network_summaries, spectral_summaries
from sne_plugin.errors import SNEError
from sne_plugin.weights import NetworkSpec

__all__ = ["SNERegressor"]

_Split = tuple[np.ndarray, np.ndarray]  # training and validation indices
_T = TypeVar("_T")
_POSITIVE_INTS = (
    "chunk_size",
    "width",
    "heads",
    "max_set",
    "epochs",
    "batch_size",
    "max_chunks_per_pass",
    "chunk_depth",
)

# (name, lower bound, bound excluded): finite real numbers (not NaN, inf, str, None or bool).
_REALS = (("lr", 0.0, True), ("weight_decay", 0.0, False), ("invariance_weight", 0.0, False))
_FLAGS = ("chunk_position", "tensor_stats", "stats_branch", "stats_boost", "warm_start")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    number = isinstance(value, (int, float, np.integer, np.floating))
    return number and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _check_real(name: str, value: Any, low: float, *, strict: bool) -> None:
    """An SNEError naming ``name`` unless ``value`` is a finite number above ``low``
    (or equal to it when not ``strict``): before torch ever sees it."""
    if not _is_real(value) or value < low or (strict and value == low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise SNEError(f"{name} must be a finite number {bound}, but got {name}={value!r}")


# The encoder's settings are SNEEncoder's parameters, under the same names here.
_ENCODER_PARAMS = tuple(inspect.signature(SNEEncoder).parameters)


@dataclass
class _Data:
    """Networks prepared once for the encoder, compactly: every network's parameters in one
    float32 buffer (``flat``, network ``i`` at ``offsets[i]:offsets[i + 1]``), its shape
    (``specs``; equal shapes share one object) and whether it is a plain chain.

    Minibatches are gathered from the buffer (:meth:`subset`), so a fit holds no tensor or
    other object per network beyond its spec, and nothing is re-read or re-chunked per epoch.
    """

    specs: list[NetworkSpec]
    flat: torch.Tensor  # (sum of num_params,) float32
    offsets: np.ndarray  # (n + 1,) int64
    chains: np.ndarray  # (n,) bool
    side: torch.Tensor | None = None  # (n, k) standardised side inputs, if any
    groups: np.ndarray | None = None  # (n,) group codes: ranking pairs form within a group
    stats: torch.Tensor | None = None  # (n, s) standardised weight statistics (stats branch)
    summary: np.ndarray | None = None  # (n, 70) weight-statistics summary, once computed
    spectral: np.ndarray | None = None  # (n, 26) singular-value summary, once computed

    def __len__(self) -> int:
        return len(self.specs)

    def __add__(self, other: _Data) -> _Data:
        def cat(a: Any, b: Any) -> Any:
            if a is None or b is None:
                return None
            return torch.cat([a, b]) if torch.is_tensor(a) else np.concatenate([a, b])

        offsets = np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]])
        return _Data(
            self.specs + other.specs,
            torch.cat([self.flat, other.flat]),
            offsets,
            np.concatenate([self.chains, other.chains]),
            cat(self.side, other.side),
            cat(self.groups, other.groups),
            cat(self.stats, other.stats),
        )

    def summaries(self) -> np.ndarray:
        """The networks' weight-statistics summaries (:func:`network_summaries`), computed
        once: the stats branch, its scaler and the trees read the same array."""
        if self.summary is None:
            self.summary = network_summaries(self.specs, [self.net(i) for i in range(len(self))])
        return self.summary

    def spectra(self) -> np.ndarray:
        """The networks' singular-value summaries (:func:`spectral_summaries`), computed once."""
        if self.spectral is None:
            self.spectral = spectral_summaries(self.specs, [self.net(i) for i in range(len(self))])
        return self.spectral

    def net(self, i: int) -> torch.Tensor:
        """Network ``i``'s flat parameter vector (a view into the buffer)."""
        return self.flat[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def subset(self, idx: np.ndarray | list[int]) -> _Data:
        idx = np.asarray(idx, dtype=np.int64)
        lo, hi = self.offsets[idx], self.offsets[idx + 1]
        sizes = hi - lo
        if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            flat = self.flat[int(lo[0]) : int(hi[-1])]  # consecutive networks: a view
        else:
            flat = self.flat[torch.from_numpy(_ranges(lo, sizes))]
        rows = torch.from_numpy(idx)
        return _Data(
            [self.specs[i] for i in idx],
            flat,
            np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            self.chains[idx],
            None if self.side is None else self.side[rows],
            None if self.groups is None else self.groups[idx],
            None if self.stats is None else self.stats[rows],
        )

    def chunks(self, idx: np.ndarray, size: int) -> list[_Data]:
        """The networks ``idx``, in order, as subsets of at most ``size``."""
        return [self.subset(idx[lo : lo + size]) for lo in range(0, len(idx), size)]


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The concatenated integer ranges ``[start, start + size)``."""
    before = np.cumsum(sizes) - sizes  # where each range begins in the output
    return np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(starts - before, sizes)


class SNERegressor(RegressorMixin, BaseEstimator):
    """Predict a network's generalization (or any property) from its weights alone.

    ``X`` is a list of networks: torch modules, state dicts, paths to ONNX files or torch
    checkpoints, sequences of ``(weight, bias)`` pairs, or :class:`~sne_plugin.NetworkWeights`
    (see :func:`sne_plugin.read_weights`). Networks may differ in architecture and size.

    Parameters
    ----------
    chunk_size, width, heads, max_set, chunk_depth:
        Encoder shape: elements per chunk, embedding width, attention heads, the most
        chunks pooled in one set (larger tensors are pooled hierarchically), and the set
        attention blocks in each of the chunk encoder's two stacks. The defaults are sized
        for CPUs: a fit on 1,000 small CNNs takes minutes on two cores
        (``python -m sne_plugin.research.bench.cost``, ``benchmarks/results/cost.md``);
        the former defaults (``chunk_size=32, width=32, chunk_depth=2``) cost about 3x
        the CPU time per training step and per prediction.
    epochs, batch_size, lr, weight_decay:
        Training (AdamW with a cosine schedule).
    invariance_weight:
        Weight ``v`` of the logit-invariance regulariser ``v/2 * (f(x) - f(gx))^2`` for random
        function-preserving permutations ``g`` of hidden units (chain networks only).
    validation_fraction, patience:
        A held-out share for early stopping on Kendall's tau (0 disables), and how many
        epochs without improvement end training (the best epoch's state is kept).
    loss:
        ``"auto"`` (the default, as the baselines have it): ``"bce"`` when every target lies
        in [0, 1] (accuracies), else ``"mse"``. ``"bce"``: targets in [0, 1], sigmoid
        output. ``"mse"``: any real targets, standardised internally. ``"pairwise"``: a
        ranking loss (RankNet's logistic loss on every pair of a minibatch with different
        targets, within a group when ``groups`` are given; ``sne_plugin._losses``); then
        ``predict`` returns a *ranking score*, higher for a better network, not a calibrated
        estimate of the target. The choice made at initialization is ``loss_``;
        ``predict``, ``partial_fit`` and warm starts keep it.
    chunk_position:
        Add a sinusoidal encoding of each chunk's index within its tensor.
    tensor_stats:
        Add each tensor's summary statistics (mean, std, min, max, mean |w|) to its vector.
    stats_branch:
        A second input to the head beside the set encoder's embedding: StatNN's per-tensor
        statistics summarised over the layers into a fixed-size vector (any architecture;
        :func:`sne_plugin.encoder.stats.network_summary`), standardised with the training
        statistics (``stats_``) and passed through a small MLP.
    stats_boost:
        Beside the set encoder, two tree ensembles fitted by ``fit`` on the same summary of
        the weight statistics, a summary of the singular values of the weight matrices
        (:func:`sne_plugin.encoder.stats.spectral_summary`: spectral norms, stable and
        effective ranks) and the side inputs when given: gradient-boosted trees
        (scikit-learn's histogram gradient boosting, 20 networks per leaf at least) and a
        forest of extremely randomized trees (scikit-learn's ``ExtraTreesRegressor`` at its
        defaults, at most 1,024 leaves a tree; missing values read as the training median);
        ``predict`` returns the mean of the three predictions, network, boosted trees and
        forest (``trees_weight_`` = 2/3 is the trees' share). Losses ``"bce"`` and ``"mse"``
        only (a ranking loss's scores live on another scale), and 40 networks at least;
        ``partial_fit`` keeps the trees of the last ``fit``. The trees are saved with the
        regressor as plain arrays (``trees_``, what they read in ``tree_inputs_``: regressors
        saved before the singular values read the summary alone); ``transform`` is the
        encoder's alone.
    max_chunks_per_pass:
        How many chunks go through the chunk encoder at once: bounds the working memory
        of very large networks (and, while training, enables recomputation).
    device:
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
    threads:
        Torch CPU threads while fitting and predicting (torch's own setting is restored
        after); ``None`` leaves torch's setting alone. Default 1: beside two busy processes
        on 2 cores, 2 threads took 1.4x as long per epoch and 1.6x per prediction, and idle
        they fitted no faster (``python -m sne_plugin.research.bench.threads``); run
        processes for parallel work.
    strict:
        How parameters the readers cannot place are handled, in ``fit``, ``predict`` and
        ``transform`` alike: ``True`` (default) raises an ``SNEError`` naming them;
        ``False`` reads what can be read, skips the rest and says so in one warning per
        call (see :func:`sne_plugin.read_weights`).
    random_state, verbose, warm_start:
        Seed (same seed, data and machine: same predictions); the progress bar over epochs
        (loss, validation tau): ``"auto"`` (default) shows it once a fit has run for more
        than a few seconds, ``True`` always, ``False`` never; continue from the fitted
        state on the next ``fit``.

    Side inputs
    -----------
    ``fit``, ``partial_fit`` and ``predict`` take ``side=``: what is known about each
    network beside its weights (the validation curve so far, the training step and the
    planned steps, numeric hyperparameters), a float array ``(n_networks, k)`` or a
    mapping of named columns; NaN means unknown. They are standardised with the training
    statistics (``side_``) and concatenated to the network embedding before the head, so
    the model learns how much to trust them. A regressor fitted with side inputs needs
    them to predict; ``transform`` returns the embedding alone.

    Groups
    ------
    ``fit`` and ``partial_fit`` take ``groups=``, one label per network (a zoo, a dataset):
    networks are compared only within their group, so zoos whose accuracies live on
    different scales can be mixed. With a ranking loss, minibatches are drawn from within
    one group and pairs never cross groups; early stopping scores the mean Kendall tau
    over the groups of the validation split.

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
    >>> model.predict(nets[:2]).shape, model.loss_
    ((2,), 'bce')
    """

    def __init__(
        self,
        chunk_size: int = 16,
        width: int = 16,
        heads: int = 2,
        max_set: int = 256,
        epochs: int = 40,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        invariance_weight: float = 0.1,
        validation_fraction: float = 0.15,
        patience: int = 10,
        loss: str = "auto",
        chunk_position: bool = True,
        tensor_stats: bool = True,
        stats_branch: bool = False,
        stats_boost: bool = True,
        max_chunks_per_pass: int = 8192,
        device: str = "auto",
        threads: int | None = 1,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool | str = "auto",
        warm_start: bool = False,
        chunk_depth: int = 1,
        strict: bool = True,
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
        self.stats_branch = stats_branch
        self.stats_boost = stats_boost
        self.max_chunks_per_pass = max_chunks_per_pass
        self.device = device
        self.threads = threads
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.chunk_depth = chunk_depth
        self.strict = strict

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any, side: Any = None, groups: Any = None) -> SNERegressor:
        """Train on networks ``X`` and targets ``y`` (and ``side`` inputs, ``groups``
        labels); returns ``self``."""
        restart = not (self.warm_start and hasattr(self, "module_"))
        return self._fit(X, y, side, groups, self.epochs, restart=restart, early_stopping=True)

    def partial_fit(self, X: Any, y: Any, side: Any = None, groups: Any = None) -> SNERegressor:
        """One more epoch over ``(X, y)``, initializing on the first call (online learning)."""
        restart = not hasattr(self, "module_")
        return self._fit(X, y, side, groups, 1, restart=restart, early_stopping=False)

    def predict(self, X: Any, side: Any = None) -> np.ndarray:
        """Predicted property of each network in ``X`` (float64 array); with a ranking
        ``loss_``, a ranking score (higher is better, not calibrated)."""
        check_is_fitted(self, "module_")
        with _torch_threads(self.threads):
            data = self._data(X, side)
            out = self._predict_data(data, embed=False)
        predicted = prediction(out, self.loss_, self.y_mean_, self.y_std_)
        trees = getattr(self, "trees_", None)  # (absent from pickles of older versions)
        if trees is None:
            return predicted
        weight = getattr(self, "trees_weight_", _TREES_WEIGHT_V1)  # (older saves: 1/2)
        from_trees = trees.predict(self._tree_features(data))
        return np.asarray((1 - weight) * predicted + weight * from_trees)

    def predict_embedded(self, embeddings: Any, side: Any = None) -> np.ndarray:
        """:meth:`predict` from embeddings made by :meth:`transform`: only the head runs
        (microseconds), so a caller that caches embeddings can re-score networks cheaply
        whenever their side inputs change."""
        check_is_fitted(self, "module_")
        if self.module_.stats_branch is not None or getattr(self, "trees_", None) is not None:
            which = "stats_branch" if self.module_.stats_branch is not None else "stats_boost"
            raise SNEError(
                f"predict_embedded needs the networks' weight statistics too with {which}=True; "
                "use predict(X, side=...)"
            )
        z = np.asarray(embeddings, dtype=np.float32)
        width = int(self.module_.encoder.width)
        if z.ndim != 2 or z.shape[1] != width:
            raise SNEError(
                f"expected embeddings of shape (n_networks, {width}) from transform(), "
                f"got shape {z.shape}"
            )
        features = torch.from_numpy(z).to(self.device_)
        side_t = self._side(side, len(z))
        with _torch_threads(self.threads), torch.inference_mode():
            if side_t is not None:
                features = torch.cat([features, side_t.to(self.device_)], dim=1)
            out = self.module_.head(features).squeeze(-1).float().cpu().numpy()
        return prediction(out.astype(np.float64), self.loss_, self.y_mean_, self.y_std_)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the embeddings of ``X``."""
        return self.fit(X, y).transform(X)

    def transform(self, X: Any) -> np.ndarray:
        """Network embeddings, ``(n_networks, width)``, for use in other estimators."""
        check_is_fitted(self, "module_")
        with _torch_threads(self.threads):
            return self._predict_data(_as_data(X, self.strict), embed=True)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted regressor to ``path`` in sne-plugin's pickle-free format.

        One ``.npz`` archive: the module's tensors and a JSON config (the package version,
        ``get_params()`` and the fitted attributes; :mod:`sne_plugin._persist`). Read it
        back with :meth:`load`, which never unpickles. ``pickle``/``joblib.dump`` of the
        estimator also work, for scikit-learn tooling; load those from trusted sources
        only, since unpickling runs whatever code the file holds.
        """
        check_is_fitted(self, "module_")
        save_regressor(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SNERegressor:
        """Read a regressor written by :meth:`save`, on any machine (CUDA or not).

        Pickle and joblib files are refused with an ``SNEError`` without being unpickled.
        """
        return load_regressor(cls, path)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        # transform() gives embeddings; it is a feature extractor too, not a float transformer
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags

    # ------------------------------------------------------------------ preparation
    def _fit(
        self,
        X: Any,
        y: Any,
        side: Any,
        groups: Any,
        epochs: int,
        *,
        restart: bool,
        early_stopping: bool,
    ) -> SNERegressor:
        """Check and read the input, initialize when ``restart``, train ``epochs``."""
        self._check_params()
        data = _as_data(X, self.strict)
        loss = _resolve_loss(self.loss, y)  # checks the name even when loss_ is kept
        loss = loss if restart else self.loss_
        target = check_targets(y, len(data), loss=loss)
        data.groups = check_groups(groups, len(data))
        with _torch_threads(self.threads):
            if restart:
                self._initialize(data, target, loss, side)
            data.side = self._side(side, len(data))
            data.stats = self._stats(data)
            self._train(data, target, epochs, early_stopping=early_stopping)
        if early_stopping:  # fit (partial_fit keeps the trees of the last fit, if any)
            self.tree_inputs_ = _TREE_INPUTS
            self.trees_ = self._fit_trees(data, target)
            self.trees_weight_ = _TREES_WEIGHT
        elif restart:
            self.trees_ = None
        return self

    def _fit_trees(self, data: _Data, target: np.ndarray) -> TreeEnsemble | None:
        """``trees_``: gradient-boosted trees on the weight statistics (and side inputs), or
        None (``stats_boost=False``, a ranking loss, or too few networks to split)."""
        if not self.stats_boost or self.loss_ not in ("bce", "mse") or len(data) < 2 * _LEAF:
            return None
        from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor

        seed, forest_seed = (int(s) for s in self._rng.randint(2**31 - 1, size=2))
        booster = HistGradientBoostingRegressor(min_samples_leaf=_LEAF, random_state=seed)
        forest = ExtraTreesRegressor(
            max_leaf_nodes=_FOREST_LEAVES, random_state=forest_seed, n_jobs=1
        )
        features = self._tree_features(data)
        known = np.flatnonzero(~np.isnan(features).all(axis=0))  # (no bias, say: all NaN)
        if not len(known):
            return None
        X = features[:, known]
        fill = np.nanmedian(X, axis=0)  # the forest's missing values: the training median
        boosted = TreeEnsemble.from_hgb(booster.fit(X, target))
        forest.fit(np.where(np.isnan(X), fill, X), target)
        trees = boosted.scaled(0.5).join(TreeEnsemble.from_forest(forest, fill).scaled(0.5))
        return trees.on_columns(known, features.shape[1])

    def _tree_features(self, data: _Data) -> np.ndarray:
        """The trees' input: the weight statistics summarised over layers (any architecture;
        :func:`~sne_plugin.encoder.stats.network_summary`), the singular values' summary
        (:func:`~sne_plugin.encoder.stats.spectral_summary`; not in saves made before it),
        then the side inputs."""
        inputs = getattr(self, "tree_inputs_", None) or "summary"  # (older saves: the summary)
        if inputs not in ("summary", _TREE_INPUTS):
            raise SNEError(
                f"expected tree_inputs_ 'summary' or {_TREE_INPUTS!r} (the trees' inputs), got "
                f"{inputs!r}: saved by a newer sne-plugin?"
            )
        parts = [data.summaries()] + ([data.spectra()] if inputs == _TREE_INPUTS else [])
        features = np.concatenate(parts + ([] if data.side is None else [data.side.numpy()]), 1)
        # float32 values, held as float64: the forest's trees compare in float32 and the
        # booster's in float64, and on such values both agree with the arrays in trees_
        return features.astype(np.float32).astype(np.float64)

    def _data(self, X: Any, side: Any) -> _Data:
        data = _as_data(X, self.strict)
        data.side = self._side(side, len(data))
        data.stats = self._stats(data)
        return data

    def _stats(self, data: _Data) -> torch.Tensor | None:
        """The stats branch's input: standardised weight statistics (None without it)."""
        if self.stats_ is None:
            return None
        summary = data.summaries()
        scaled = self.stats_.transform(summary, len(data))
        return torch.from_numpy(np.clip(scaled, -_STATS_CLIP, _STATS_CLIP))

    def _side(self, side: Any, n: int) -> torch.Tensor | None:
        """The side inputs as the module reads them, checked against what ``fit`` saw."""
        if self.side_ is None:
            if side is not None:
                raise SNEError(
                    "this SNERegressor was fitted without side inputs, got side=...; refit "
                    "with side inputs to use them"
                )
            return None
        if side is None:
            names = "" if self.side_.names is None else f" ({', '.join(self.side_.names)})"
            raise SNEError(
                f"this SNERegressor was fitted with {self.side_.width} side input(s){names} "
                "per network; pass them as side=..."
            )
        return torch.from_numpy(self.side_.transform(side, n))

    def _check_params(self) -> None:
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise SNEError(f"{name} must be a positive integer, but got {name}={value!r}")
        if not _is_int(self.patience) or self.patience < 0:
            raise SNEError(f"patience must be an integer >= 0, but got patience={self.patience!r}")
        for name, low, strict in _REALS:
            _check_real(name, getattr(self, name), low, strict=strict)
        for name in _FLAGS:
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise SNEError(f"{name} must be True or False, but got {getattr(self, name)!r}")
        if self.width % self.heads:
            raise SNEError(
                f"width must be a multiple of heads, but got width={self.width}, heads={self.heads}"
            )
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise SNEError(f"threads must be None or a positive integer, but got {self.threads!r}")
        if not isinstance(self.strict, (bool, np.bool_)):
            raise SNEError(f"strict must be True or False, but got strict={self.strict!r}")
        if self.verbose not in (True, False, "auto"):
            raise SNEError(f"verbose must be True, False or 'auto', but got {self.verbose!r}")
        fraction = self.validation_fraction
        if not _is_real(fraction) or not 0 <= fraction < 1:
            raise SNEError(f"validation_fraction must be in [0, 1), but got {fraction!r}")

    # ------------------------------------------------------------------ initialization
    def _initialize(self, data: _Data, target: np.ndarray, loss: str, side: Any = None) -> None:
        """Fitted state from scratch, one step per part (as skorch's ``initialize``)."""
        self._initialize_device()
        self._initialize_rng()
        self._initialize_scales(data, target, loss)
        self._initialize_side(side, len(data))
        self._initialize_stats(data)
        self._initialize_module()
        self._initialize_optimizer()
        self._initialize_history()

    def _initialize_device(self, saved: str | None = None) -> None:
        """``device_``: the ``device`` parameter, or a ``saved`` one (the CPU if CUDA is gone)."""
        if saved is None:
            self.device_ = resolve_device(self.device)
            return
        device = torch.device(saved)
        cuda_gone = device.type == "cuda" and not torch.cuda.is_available()
        self.device_ = torch.device("cpu") if cuda_gone else device

    def _initialize_rng(self) -> None:
        self._rng = check_random_state(self.random_state)

    def _initialize_scales(self, data: _Data, target: np.ndarray, loss: str) -> None:
        """The resolved ``loss_``, and the scales of the weights and (for mse) the targets."""
        self.loss_ = loss
        scale = float(data.flat.std()) if data.flat.numel() > 1 else 1.0
        self.weight_scale_ = scale if scale > 0 else 1.0
        self.y_mean_, self.y_std_ = target_scale(target, loss)

    def _initialize_side(self, side: Any, n: int) -> None:
        """``side_``: the side inputs' training statistics (None without side inputs)."""
        self.side_ = None if side is None else SideScaler.fit(side, n)

    def _initialize_stats(self, data: _Data) -> None:
        """``stats_``: the training statistics of the stats branch's input (or None)."""
        if not self.stats_branch:
            self.stats_ = None
            return
        summary = data.summaries()
        self.stats_ = SideScaler.fit(summary, len(data))

    def _initialize_module(self, state: dict[str, torch.Tensor] | None = None) -> None:
        """``module_`` on ``device_``: fresh weights seeded from ``_rng``, or ``state``."""
        seed = int(self._rng.randint(2**31 - 1)) if state is None else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            n_side = 0 if self.side_ is None else self.side_.width
            n_stats = 0 if self.stats_ is None else self.stats_.width
            module = SNENet(
                hidden=self.width, n_side=n_side, n_stats=n_stats, **self._encoder_settings()
            )
        if state is not None:
            module.load_state_dict(_grown_types(module, state))
        self.module_ = module.to(self.device_)

    def _encoder_settings(self) -> dict[str, Any]:
        """This estimator's values of the :class:`SNEEncoder` parameters."""
        return {name: getattr(self, name) for name in _ENCODER_PARAMS}

    def _initialize_optimizer(self, state: dict[str, Any] | None = None) -> None:
        self.optimizer_ = torch.optim.AdamW(
            self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        if state is not None:
            self.optimizer_.load_state_dict(state)

    def _initialize_history(self) -> None:
        self.history_: list[dict[str, float]] = []
        self.n_epochs_ = 0

    # ------------------------------------------------------------------ training
    def _train(self, data: _Data, target: np.ndarray, epochs: int, *, early_stopping: bool) -> None:
        split = train_idx, val_idx = self._split(len(data), early_stopping)
        self._val_idx = val_idx  # which networks early stopping held out (tests, debugging)
        y_t = torch.as_tensor((target - self.y_mean_) / self.y_std_, dtype=torch.float32)
        steps = epochs * math.ceil(len(train_idx) / self.batch_size)
        schedule = _cosine(self.optimizer_, steps, self.lr) if early_stopping else None
        best, bar = _Best(), _Progress(epochs, self.verbose, show_tau=len(val_idx) > 0)
        for _ in range(epochs):
            loss = self._epoch(data, y_t, train_idx, schedule)
            tau = self._end_epoch(data, target, split, loss)
            bar.update(loss, tau)
            best.update(tau, self.module_)
            if len(val_idx) and best.stale >= self.patience:
                break
        bar.close()
        if best.state is not None:
            self.module_.load_state_dict(best.state)
            self.best_val_tau_ = best.tau

    def _end_epoch(self, data: _Data, target: np.ndarray, split: _Split, loss: float) -> float:
        """Recalibrate, score the validation split and record the epoch; returns its tau.

        With at least ``_VAL_CALIBRATION`` validation networks, their embeddings (computed
        for scoring anyway) give the standardisation statistics: networks of the same zoo,
        the same statistics in expectation, and no second pass over training networks
        (that pass was a fifth of an epoch's time at 1,000 networks). Fewer, and the
        statistics come from the training networks (:meth:`_recalibrate`).
        """
        train_idx, val_idx = split
        if len(val_idx) >= _VAL_CALIBRATION:
            tau = self._calibrated_val_tau(data, target, val_idx)
        else:
            self._recalibrate(data, train_idx)
            tau = self._val_tau(data, target, val_idx)
        self.n_epochs_ += 1
        self.history_.append({"epoch": self.n_epochs_, "loss": loss, "val_tau": tau})
        return tau

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
        encode = lambda sub: self.module_.encoder(*self._batch(sub))  # noqa: E731
        parts = self._by_networks(data, sample, 64, encode, "recalibration")
        self.module_.standardize.set_statistics(torch.cat(parts).float())

    def _split(self, n: int, early_stopping: bool) -> _Split:
        order = self._rng.permutation(n)
        n_val = round(self.validation_fraction * n) if early_stopping else 0
        if n_val < 4 or n - n_val < 2:
            return order, order[:0]
        return order[n_val:], order[:n_val]

    def _epoch(self, data: _Data, y_t: torch.Tensor, train_idx: np.ndarray, schedule: Any) -> float:
        self.module_.train()
        total, count = 0.0, 0
        for idx in self._batches(train_idx, data.groups):
            loss = self._step(data, y_t, idx)
            if schedule is not None:
                schedule.step()
            total += loss * len(idx)
            count += len(idx)
        return total / max(count, 1)

    def _batches(self, train_idx: np.ndarray, groups: np.ndarray | None) -> list[np.ndarray]:
        """One epoch's minibatches, in random order. With a ranking loss and ``groups``, each
        batch comes from one group (a group split into near-equal batches of at most
        ``batch_size``), so that every pair in it counts; otherwise the groups mix."""
        order = self._rng.permutation(train_idx)
        if groups is None or self.loss_ not in RANKING_LOSSES:
            size = self.batch_size
            return [order[lo : lo + size] for lo in range(0, len(order), size)]
        batches = []
        for code in np.unique(groups[order]):
            members = order[groups[order] == code]
            batches += np.array_split(members, math.ceil(len(members) / self.batch_size))
        return [batches[i] for i in self._rng.permutation(len(batches))]

    def _step(self, data: _Data, y_t: torch.Tensor, idx: np.ndarray) -> float:
        sub = data.subset(idx)
        keep, permuted = self._permuted(sub) if self.invariance_weight > 0 else ([], None)
        both, target = sub if permuted is None else sub + permuted, y_t[idx].to(self.device_)
        backward = partial(self._backward, both, target, keep, sub.groups)
        loss = None
        while loss is None:  # each None: out of memory, the passes made smaller
            loss = self._guarded(backward, f"a training step on {len(idx)} networks")
        torch.nn.utils.clip_grad_norm_(self.module_.parameters(), 1.0)
        self.optimizer_.step()
        return float(loss.detach())

    def _backward(
        self, data: _Data, target: torch.Tensor, keep: list[int], groups: np.ndarray | None
    ) -> torch.Tensor:
        """Forward and backward of one minibatch (gradients set, not yet applied)."""
        loss = self._loss(self._forward(data), target, keep, groups)
        self.optimizer_.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def _loss(
        self,
        out: torch.Tensor,
        target: torch.Tensor,
        keep: list[int],
        groups: np.ndarray | None = None,
    ) -> torch.Tensor:
        """The task loss on the first ``len(target)`` outputs (ranking pairs within
        ``groups``), plus the invariance term between the networks ``keep`` and their
        permuted copies (the outputs after them)."""
        n = len(target)
        if self.loss_ == "pairwise":
            codes = None if groups is None else torch.as_tensor(groups[:n], device=out.device)
            loss = pairwise_logistic(out[:n], target, codes)
        elif self.loss_ == "bce":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:n], target)
        else:
            loss = torch.nn.functional.mse_loss(out[:n], target)
        if keep:
            original = out[torch.as_tensor(keep, device=out.device)]
            loss = loss + self.invariance_weight * 0.5 * (original - out[n:]).pow(2).mean()
        return loss

    def _permuted(self, sub: _Data) -> tuple[list[int], _Data | None]:
        """Randomly permuted copies of some chain networks of a minibatch, and which ones."""
        keep = np.flatnonzero(sub.chains)[: self._n_invariance(len(sub))]
        if not len(keep):
            return [], None
        twin = sub.subset(keep)  # side inputs and statistics: a permutation keeps them
        index = [
            random_flat_index(spec, self._rng)[0] + start
            for spec, start in zip(twin.specs, twin.offsets[:-1], strict=True)
        ]
        twin.flat = twin.flat[torch.from_numpy(np.concatenate(index))]
        return keep.tolist(), twin

    @staticmethod
    def _n_invariance(n: int) -> int:
        # The regulariser runs on a quarter of each minibatch: a quarter of the extra cost,
        # the same signal in expectation (minibatches are reshuffled every epoch).
        return max(1, n // 4)

    def _batch(self, data: _Data) -> tuple[Batch, torch.Tensor]:
        """The module's input for ``data``, on ``device_``: the batch plan, the scaled weights."""
        encoder = self.module_.encoder
        batch = make_batch(data.specs, encoder.chunk_size, encoder.max_set).to(self.device_)
        flat = data.flat.to(self.device_, non_blocking=True) / self.weight_scale_
        return batch, flat

    def _forward(self, data: _Data) -> torch.Tensor:
        side = None if data.side is None else data.side.to(self.device_)
        stats = None if data.stats is None else data.stats.to(self.device_)
        out: torch.Tensor = self.module_(*self._batch(data), side, stats)
        return out

    def _val_tau(self, data: _Data, target: np.ndarray, val_idx: np.ndarray) -> float:
        if not len(val_idx):
            return math.nan
        sub = data.subset(val_idx)
        return grouped_tau(self._predict_data(sub, embed=False), target[val_idx], sub.groups)

    @torch.inference_mode()
    def _calibrated_val_tau(self, data: _Data, target: np.ndarray, val_idx: np.ndarray) -> float:
        """Standardisation statistics from the validation networks' embeddings, then their
        tau (one encoder pass over them)."""
        self.module_.eval()
        sub = data.subset(val_idx)
        encode = lambda part: self.module_.encoder(*self._batch(part)).float()  # noqa: E731
        encoded = torch.cat(self._by_networks(sub, np.arange(len(sub)), 64, encode, "validation"))
        self.module_.standardize.set_statistics(encoded)
        side = None if sub.side is None else sub.side.to(self.device_)
        stats = None if sub.stats is None else sub.stats.to(self.device_)
        out = self.module_.head_from(encoded, side, stats).float().cpu().numpy()
        return grouped_tau(out.astype(np.float64), target[val_idx], sub.groups)

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def _predict_data(self, data: _Data, *, embed: bool) -> np.ndarray:
        if self.module_.training:
            self.module_.eval()
        run = (lambda sub: self.module_.embed(*self._batch(sub))) if embed else self._forward
        idx = np.arange(len(data))
        to_cpu = lambda sub: run(sub).float().cpu()  # noqa: E731  (device memory: one pass)
        outs = self._by_networks(data, idx, max(self.batch_size, 64), to_cpu, "prediction")
        return torch.cat(outs).numpy().astype(np.float64)

    # ------------------------------------------------------------------ out of memory
    def _by_networks(
        self,
        data: _Data,
        idx: np.ndarray,
        size: int,
        run: Callable[[_Data], torch.Tensor],
        what: str,
    ) -> list[torch.Tensor]:
        """``run`` on the networks ``idx`` in passes of at most ``size`` (fewer after an
        out-of-memory error: the pass is retried smaller, see :meth:`_guarded`)."""
        outs: list[torch.Tensor] = []
        lo = 0
        while lo < len(idx):
            n = min(size, getattr(self, "_oom_networks", None) or size)
            sub = data.subset(idx[lo : lo + n])
            out = self._guarded(partial(run, sub), f"{what} of networks {lo}-{lo + n - 1}", n)
            if out is not None:
                outs.append(out)
                lo += n
        return outs

    def _guarded(self, run: Callable[[], _T], what: str, networks: int = 1) -> _T | None:
        """``run()``; after a device out-of-memory error, None once a pass is made smaller
        (the caller retries it): the networks per pass halved while ``networks`` > 1 (where
        networks are independent: inference), else the encoder's chunks per pass (the same
        computation in smaller pieces). An SNEError when both are down to 1."""
        try:
            return run()
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            cause = (str(exc).splitlines() or [type(exc).__name__])[0]
        free_device_memory()  # outside the except block: its traceback held the tensors
        self._shrink(what, networks, cause)
        return None

    def _shrink(self, what: str, networks: int, cause: str) -> None:
        encoder = self.module_.encoder
        tried: list[str] = self.__dict__.setdefault("_oom_tried", [])
        if networks > 1:
            self._oom_networks = networks // 2
            change = f"{networks // 2} networks per pass"
        elif encoder.max_chunks_per_pass > 1:
            encoder.max_chunks_per_pass //= 2
            change = f"{encoder.max_chunks_per_pass} chunks per encoder pass"
        else:
            raise SNEError(
                f"out of memory on {self.device_} in {what}, even with 1 network and 1 chunk "
                f"per pass (tried, in turn: {', '.join(tried) or 'nothing smaller'}); last "
                f"error: {cause}. Free device memory, or use device='cpu'"
            )
        if not tried:
            warnings.warn(
                f"out of memory on {self.device_} in {what} ({cause}); retrying with "
                f"{change}, and halving again if needed (the results are the same, only "
                "slower); later passes keep the smaller size",
                RuntimeWarning,
                stacklevel=2,
            )
        tried.append(change)

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if "module_" in state:
            # Fitted tensors travel on the CPU so that a pickle loads on any host.
            state["module_"] = {k: v.detach().cpu() for k, v in self.module_.state_dict().items()}
            state["optimizer_"] = _optimizer_state_cpu(self.optimizer_)
            state["device_"] = str(self.device_)
            state["_sne_version"] = _version()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        _check_version(state.get("_sne_version"))
        module_state, optimizer_state = state.get("module_"), state.get("optimizer_")
        super().__setstate__(state)
        if isinstance(module_state, dict):
            self.__dict__.setdefault("loss_", self.loss)  # saved before loss_ existed
            self.__dict__.setdefault("side_", None)  # saved before side inputs existed
            self.__dict__.setdefault("chunk_depth", 2)  # saved before it was a parameter
            self.__dict__.setdefault("stats_", None)  # saved before the stats branch existed
            self.__dict__.setdefault("strict", True)  # saved before it was a parameter
            self._initialize_device(state["device_"])
            self._initialize_module(module_state)
            self._initialize_optimizer(_grown_moments(self.module_, optimizer_state))


def _resolve_loss(loss: str, y: Any) -> str:
    """A ranking loss as it is, else ``bce``/``mse`` (``auto`` resolved) as the baselines."""
    if loss in RANKING_LOSSES:
        return loss
    if loss not in LOSSES:
        raise SNEError(f"expected loss to be one of {LOSSES + RANKING_LOSSES}, but got {loss=}")
    return resolve_loss(loss, y)


_LEAF = 20  # the boosted trees' smallest leaf (scikit-learn's default)
# The trees' share of the prediction: the network, the boosted trees and the forest count a
# third each (trees_ holds the two tree ensembles at half weight each); saves made before the
# forest (no trees_weight_ in them) hold the boosted trees alone, at half of the prediction.
_TREES_WEIGHT, _TREES_WEIGHT_V1 = 2 / 3, 0.5
# What the trees read: the weight-statistics summary, then the singular values' summary (saves
# made before it have no tree_inputs_ and read the summary alone), then any side inputs.
_TREE_INPUTS = "summary+spectral"
# The forest's trees grow until their leaves are pure (scikit-learn's default), up to this many
# leaves: below about 1,000 networks the cap never binds; above, it bounds the trees' size
# (at most 100 x 2,047 nodes: about 9 MB in memory, 7 MB in a saved regressor).
_FOREST_LEAVES = 1024
_VAL_CALIBRATION = 64  # validation networks enough to set the standardisation statistics
_STATS_CLIP = 5.0  # standardised statistics beyond +-5 (another architecture's) are clipped


def _as_data(X: Any, strict: bool = True) -> _Data:
    nets = read_networks(X, strict=bool(strict), owner="SNERegressor")
    shared: dict[NetworkSpec, NetworkSpec] = {}
    specs = [shared.setdefault(net.spec, net.spec) for net in nets]
    offsets = np.concatenate([[0], np.cumsum([s.num_params for s in specs])]).astype(np.int64)
    flat = np.empty(int(offsets[-1]), np.float32)
    for i, net in enumerate(nets):
        flat[offsets[i] : offsets[i + 1]] = net.flatten()
    chains = np.array([net.is_chain for net in nets], dtype=bool)
    return _Data(specs, torch.from_numpy(flat), offsets, chains)


class _Best:
    """Early stopping's memory: the best validation tau, its module state, epochs since."""

    def __init__(self) -> None:
        self.tau = -math.inf
        self.state: dict[str, Any] | None = None
        self.stale = 0

    def update(self, tau: float, module: torch.nn.Module) -> None:
        if not math.isnan(tau) and tau > self.tau:
            self.tau, self.state, self.stale = tau, copy.deepcopy(module.state_dict()), 0
        else:
            self.stale += 1


class _Progress:
    """A bar over epochs showing the loss, and val_tau where there is a validation split.

    ``verbose=True``: from the start; ``False``: never; ``"auto"``: from the first epoch that
    ends more than :data:`_AUTO_AFTER_S` seconds into the fit (quick fits stay quiet).
    """

    def __init__(self, epochs: int, verbose: bool | str, *, show_tau: bool) -> None:
        self.epochs, self.verbose, self.show_tau = epochs, verbose, show_tau
        self.done, self.start = 0, time.perf_counter()
        self.bar = _tqdm(epochs) if verbose is True else None

    def update(self, loss: float, tau: float) -> None:
        self.done += 1
        late = time.perf_counter() - self.start > _AUTO_AFTER_S
        if self.bar is None and self.verbose == "auto" and late and self.done < self.epochs:
            self.bar = _tqdm(self.epochs, initial=self.done - 1)
        if self.bar is None:
            return
        self.bar.update(1)
        shown = {"loss": f"{loss:.4f}"}
        if self.show_tau:
            shown["val_tau"] = f"{tau:.3f}"
        self.bar.set_postfix(shown)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_AUTO_AFTER_S = 5.0


def _tqdm(epochs: int, initial: int = 0) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=epochs, initial=initial, desc="SNE fit", unit="epoch")


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's CPU threads set to ``threads`` inside the block (unchanged for None)."""
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_version(saved: str | None) -> None:
    if saved is not None and saved.split(".")[:2] != _version().split(".")[:2]:
        raise SNEError(
            f"this SNERegressor was saved by sne-plugin {saved}, which is not compatible with "
            f"the installed {_version()}; refit it, or install sne-plugin=={saved}"
        )


def _grown_types(module: SNENet, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with a type table saved before layer kinds were added completed with the
    fresh module's rows for the new kinds (the pickle path; ``_persist`` does the same)."""
    key = _TYPE_TABLE
    fresh = module.state_dict()[key]
    saved = state.get(key)
    if saved is None or tuple(saved.shape[1:]) != tuple(fresh.shape[1:]):
        return state
    if not 0 < saved.shape[0] < fresh.shape[0]:
        return state
    return {**state, key: torch.cat([saved, fresh[saved.shape[0] :].to(saved.dtype)])}


def _grown_moments(module: SNENet, state: dict[str, Any] | None) -> dict[str, Any] | None:
    """Optimizer ``state`` whose moments of a shorter type table get zero rows added."""
    if not state:
        return state
    table = module.encoder.type_embedding.weight
    index = next(i for i, p in enumerate(module.parameters()) if p is table)
    entry = state.get("state", {}).get(index)
    if not entry:
        return state
    grown = dict(entry)
    for name, value in entry.items():
        if torch.is_tensor(value) and value.dim() == 2 and value.shape[0] < table.shape[0]:
            pad = torch.zeros(table.shape[0] - value.shape[0], value.shape[1], dtype=value.dtype)
            grown[name] = torch.cat([value, pad])
    return {**state, "state": {**state["state"], index: grown}}


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


def _version() -> str:
    from sne_plugin import __version__

    return __version__
