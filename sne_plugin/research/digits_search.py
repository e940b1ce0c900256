"""The digits search: one definition of the CNN search that the example, the demo, the
benchmarks and the tests all run.

Each trial picks a small CNN (one or two conv layers, their widths) and its training (SGD
learning rate, momentum, batch size, weight decay) on scikit-learn's 8x8 digits, trains it
epoch by epoch and reports its validation accuracy (``trial.report``) and, for SNEPruner, its
weights (``report_weights``). :data:`KEEP_RULE` is the pruning rule every SNEPruner of this
search uses (the one the benchmarks measured).

>>> data = load_data()
>>> tuple(data.x_train.shape), tuple(data.x_val.shape)
((1297, 1, 8, 8), (500, 1, 8, 8))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from sklearn.datasets import load_digits
from torch import nn

from sne_plugin.integrations.optuna import SNEPruner, default_regressor, report_weights
from sne_plugin.readers import read_weights
from sne_plugin.regressor import SNERegressor
from sne_plugin.weights import NetworkWeights

__all__ = [
    "KEEP_RULE",
    "Digits",
    "Ledger",
    "RandomTrial",
    "accuracy",
    "build",
    "default_pruner",
    "fit_pretrained",
    "load_data",
    "make_objective",
    "optimizer",
    "random_trials",
    "train_one_epoch",
]

KEEP_RULE: dict[str, Any] = {
    "percentile": 80.0,
    "n_warmup_steps": 1,
    "n_min_trials": 4,
    "reference": "peers",
}
"""After 2 epochs (step 1), once 4 trials have ended, keep about the best fifth of the trials
that reach a step, ranked among all of them: the rule the pruner benchmarks measured."""


@dataclass
class Digits:
    """The digits, as ``(n, 1, 8, 8)`` float tensors in [0, 1], split train / validation."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


@dataclass
class Ledger:
    """What a search cost: epochs trained, seconds training, seconds in SNE's hooks."""

    epochs: int = 0
    train_s: float = 0.0
    hook_s: float = 0.0
    hook_calls: int = 0
    finals: list[float] = field(default_factory=list)


def load_data(seed: int = 0, n_val: int = 500) -> Digits:
    """sklearn's digits split at random (``seed``) into train and validation."""
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    return Digits(x[train], y[train], x[val], y[val])


def build(trial: optuna.Trial) -> nn.Module:
    """A small CNN whose depth and widths the trial chooses."""
    c1 = trial.suggest_categorical("c1", [4, 8, 16])
    layers: list[nn.Module] = [nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    channels = c1
    if trial.suggest_int("n_conv", 1, 2) == 2:
        channels = trial.suggest_categorical("c2", [8, 16, 32])
        layers += [nn.Conv2d(c1, channels, 3, padding=1), nn.ReLU()]
    layers += [nn.Flatten(), nn.Linear(channels * 16, 10)]
    return nn.Sequential(*layers)


def optimizer(trial: optuna.Trial, model: nn.Module) -> tuple[torch.optim.Optimizer, int]:
    """SGD with the trial's learning rate, momentum and weight decay; and its batch size."""
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    momentum = trial.suggest_float("momentum", 0.0, 0.95)
    decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    batch = trial.suggest_categorical("batch_size", [16, 32, 64, 128])
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=decay), batch


def train_one_epoch(
    model: nn.Module, opt: torch.optim.Optimizer, data: Digits, batch: int, gen: torch.Generator
) -> None:
    model.train()
    order = torch.randperm(len(data.x_train), generator=gen)
    for lo in range(0, len(order), batch):
        idx = order[lo : lo + batch]
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy(model: nn.Module, data: Digits) -> float:
    """Validation accuracy in [0, 1] (0 when the network diverged)."""
    model.eval()
    logits = model(data.x_val)
    if not torch.isfinite(logits).all():
        return 0.0
    return float((logits.argmax(1) == data.y_val).float().mean())


@dataclass
class RandomTrial:
    """One configuration trained to the end: its weights and validation accuracy per epoch."""

    weights: list[NetworkWeights]
    values: list[float]

    @property
    def final(self) -> float:
        return self.values[-1]


def random_trials(
    data: Digits, n: int, epochs: int, seed: int, *, progress: bool = False
) -> list[RandomTrial]:
    """``n`` configurations of this search drawn at random (seed ``seed``), each trained fully:
    the offline zoo a pretrained pruner learns from."""
    from tqdm.auto import trange

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in trange(n, desc="pretraining zoo", unit="trial", disable=not progress):
        trial = study.ask()
        torch.manual_seed(seed + trial.number)
        model = build(trial)
        opt, batch = optimizer(trial, model)
        gen = torch.Generator().manual_seed(seed + trial.number)
        weights, values = [], []
        for _epoch in range(epochs):
            train_one_epoch(model, opt, data, batch, gen)
            weights.append(read_weights(model))
            values.append(accuracy(model, data))
        study.tell(trial, values[-1])
        out.append(RandomTrial(weights, values))
    return out


def fit_pretrained(
    zoo: list[RandomTrial], first_step: int = 1, loss: str = "mse", *, verbose: bool = False
) -> SNERegressor:
    """The pruner's regressor: every finite snapshot from ``first_step`` on -> final accuracy."""
    nets, finals = [], []
    for t in zoo:
        keep = [w for w in t.weights[first_step:] if w.is_finite()]
        nets += keep
        finals += [t.final] * len(keep)
    # The online pruner's small regressor, trained twice as long: it is fitted once, offline.
    # Squared error ranked held-out trials of this search better than the default
    # cross-entropy at every step measured (sne_plugin/research/bench/pruner_signals.py).
    regressor = default_regressor(loss=loss).set_params(epochs=30, verbose=verbose)
    return regressor.fit(nets, finals)


def make_objective(
    data: Digits, epochs: int, *, use_sne: bool = True, ledger: Ledger | None = None
) -> Callable[[optuna.Trial], float]:
    """The objective of the issue: report accuracy and weights each epoch, ask to prune."""
    ledger = ledger if ledger is not None else Ledger()

    def objective(trial: optuna.Trial) -> float:
        torch.manual_seed(trial.number)
        model = build(trial)
        opt, batch = optimizer(trial, model)
        gen = torch.Generator().manual_seed(trial.number)
        for epoch in range(epochs):
            start = time.perf_counter()
            train_one_epoch(model, opt, data, batch, gen)
            ledger.train_s += time.perf_counter() - start
            ledger.epochs += 1
            trial.report(accuracy(model, data), epoch)
            start = time.perf_counter()
            if use_sne:
                report_weights(trial, model, epoch)
            prune = trial.should_prune()
            ledger.hook_s += time.perf_counter() - start
            ledger.hook_calls += 1
            if prune:
                raise optuna.TrialPruned()
        final = accuracy(model, data)
        ledger.finals.append(final)
        return final

    return objective


def default_pruner(
    artifact_dir: str | None = None,
    regressor: Any = None,
    *,
    online: bool | None = None,
    **overrides: Any,
) -> SNEPruner:
    """The SNEPruner this search uses: :data:`KEEP_RULE` with ``overrides``. Without a
    ``regressor``: the shipped pretrained predictor (fine-tuned; ``online=False``: zero-shot)
    or, with ``online=True``, online-only with small quick refits; with ``regressor`` (a
    fitted SNERegressor or the path of a saved one): pretrained, weights only."""
    settings: dict[str, Any] = {
        **KEEP_RULE,
        "refit_every": 4,
        "max_train_networks": 64,
        **overrides,
    }
    if regressor is not None or not online:
        settings.pop("max_train_networks")
    if regressor is not None and not online:
        settings.pop("refit_every")
    return SNEPruner(regressor, online=online, artifact_dir=artifact_dir, **settings)
