"""Training many small networks at once, each with its own hyperparameters.

A :class:`TrainJob` is a group of models of one architecture, activation and batch size.
Architectures without buffers are trained together by :func:`torch.func.vmap` over
stacked parameters (:func:`_train_vmap`); the others (BatchNorm, the ViT) one at a time with
``torch.optim`` (:func:`_train_plain`, also the reference the fast path is tested against).
Both use the same initialisation, the same minibatch schedule and the same update rules.

Conventions: a model trains on a random subset of ``train_fraction`` of the training set;
one epoch is ``len(subset) // batch_size`` steps (the last partial batch dropped) over a
fresh permutation of the subset; dropout acts on the features before the head; L2 is
``weight_decay`` as in ``torch.optim`` (added to the gradient; AdamW's is decoupled, as in
``torch.optim.AdamW``); SGD uses momentum 0.9.

Two hyperparameter spaces (:data:`SPACES`): ``"classic"`` (constant learning rate, no label
smoothing; the zoos of the benchmark) and ``"meta"`` (the pretraining meta-zoo: AdamW too, a
learning-rate schedule per model, :func:`lr_factor`, and label smoothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from sne_plugin.research.zoo.architectures import ARCHITECTURES, ZooNet, build
from sne_plugin.research.zoo.datasets import load_dataset

__all__ = [
    "HPARAM_KEYS",
    "META_HPARAM_KEYS",
    "SCHEDULES",
    "SPACES",
    "ModelResult",
    "TrainJob",
    "init_model",
    "lr_factor",
    "run_job",
    "sample_hparams",
]

INITS = ("default", "kaiming_normal", "xavier_uniform", "orthogonal", "normal")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adamw")
CLASSIC_OPTIMIZERS = OPTIMIZERS[:3]
SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")
SPACES = ("classic", "meta")
HPARAM_KEYS = (
    "init",
    "init_scale",
    "optimizer",
    "lr",
    "l2",
    "dropout",
    "activation",
    "train_fraction",
    "batch_size",
    "epochs",
)
META_HPARAM_KEYS = (*HPARAM_KEYS, "schedule", "label_smoothing")
# Ranges chosen for a wide, not bimodal accuracy spread (small_cnn on digits, 64 models:
# quantiles 5%..95% listed in BENCHMARKS.md): the top of the old ranges and sigmoid nets
# mostly ended at chance, the low ends give the partly trained middle.
_LR_RANGE = {
    "sgd": (1e-2, 0.3),
    "adam": (3e-4, 2e-2),
    "rmsprop": (2e-4, 5e-3),
    "adamw": (3e-4, 2e-2),
}
_TRAIN_FRACTION = (0.2, 1.0)
_SIGMOID_WEIGHT = 0.15  # sigmoid nets mostly stay at chance here: sampled less often

State = dict[str, torch.Tensor]


def sample_hparams(
    seed: int,
    model_id: int,
    *,
    min_epochs: int,
    max_epochs: int,
    activations: tuple[str, ...] = ("relu", "tanh", "gelu", "sigmoid"),
    space: str = "classic",
) -> dict[str, Any]:
    """The hyperparameters of model ``model_id``; they depend only on ``(seed, model_id)``
    (and ``space``: ``"meta"`` adds ``schedule`` and ``label_smoothing`` and AdamW).

    >>> hp = sample_hparams(0, 3, min_epochs=4, max_epochs=8)
    >>> sorted(hp) == sorted(HPARAM_KEYS), 4 <= hp["epochs"] <= 8
    (True, True)
    >>> sorted(sample_hparams(0, 3, min_epochs=4, max_epochs=8, space="meta")) == sorted(
    ...     META_HPARAM_KEYS)
    True
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    rng = np.random.default_rng([seed, model_id, 1])
    opt = str(rng.choice(CLASSIC_OPTIMIZERS if space == "classic" else OPTIMIZERS))
    lo, hi = _LR_RANGE[opt]
    if space == "meta":  # small and large rates: a wider spread than the classic zoos
        lo, hi = lo / 3, hi * 2
    l2_range = (1e-4, 0.2) if opt == "adamw" else (1e-6, 1e-2)
    hp = {
        "init": str(rng.choice(INITS)),
        "init_scale": float(np.exp(rng.uniform(np.log(0.5), np.log(2.5)))),
        "optimizer": opt,
        "lr": float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        "l2": float(np.exp(rng.uniform(*np.log(l2_range)))),
        "dropout": float(rng.uniform(0.0, 0.6)),
        "activation": str(rng.choice(activations, p=_activation_probs(activations))),
        "train_fraction": float(rng.uniform(*_TRAIN_FRACTION)),
        "batch_size": int(rng.choice([32, 64])),
        "epochs": int(rng.integers(min_epochs, max_epochs + 1)),
    }
    if space == "meta":
        hp["schedule"] = str(rng.choice(SCHEDULES))
        hp["label_smoothing"] = float(rng.uniform(0.0, 0.2)) if rng.random() < 0.5 else 0.0
    return hp


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total`` steps.

    ``constant`` 1; ``cosine`` from 1 to 0; ``warmup_cosine`` linear from ``1/w`` to 1 over
    the first ``w = max(1, total // 10)`` steps, then cosine; ``step`` x0.1 at half and
    again at three quarters of the steps.

    >>> [round(lr_factor("warmup_cosine", t, 20), 3) for t in (0, 1, 2, 19)]
    [0.5, 1.0, 1.0, 0.008]
    >>> [lr_factor("step", t, 8) for t in (3, 4, 6)]
    [1.0, 0.1, 0.010000000000000002]
    """
    total = max(int(total), 1)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / total))
    if schedule == "warmup_cosine":
        w = max(1, total // 10)
        if step < w:
            return (step + 1) / w
        return 0.5 * (1 + math.cos(math.pi * (step - w) / max(total - w, 1)))
    if schedule == "step":
        return 0.1 ** ((step >= total // 2) + (step >= (3 * total) // 4))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def _factors(hparams: list[dict[str, Any]], totals: np.ndarray, step: int) -> torch.Tensor:
    return torch.tensor(
        [lr_factor(hp.get("schedule", "constant"), step, int(n)) for hp, n in zip(hparams, totals)],
        dtype=torch.float32,
    )


def _activation_probs(activations: tuple[str, ...]) -> np.ndarray:
    w = np.array([_SIGMOID_WEIGHT if a == "sigmoid" else 1.0 for a in activations])
    return np.asarray(w / w.sum())


@dataclass
class TrainJob:
    """A group of models trained together: one architecture, activation and batch size."""

    arch: str
    dataset: str
    dataset_args: dict[str, Any]
    ids: list[int]
    hparams: list[dict[str, Any]]
    seeds: list[int]
    save_epochs: tuple[int, ...]

    def cost(self) -> float:
        """Roughly the number of sample-steps (for scheduling the longest jobs first)."""
        return float(sum(hp["epochs"] * hp["train_fraction"] for hp in self.hparams))


@dataclass
class ModelResult:
    """What training one model produced: accuracies per epoch and weights at saved epochs."""

    id: int
    test_acc: dict[int, float] = field(default_factory=dict)
    train_acc: dict[int, float] = field(default_factory=dict)
    weights: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


# --- initialisation and data schedule -------------------------------------------------------


def init_model(
    arch: str,
    hp: dict[str, Any],
    seed: int,
    input_shape: tuple[int, int, int],
) -> ZooNet:
    """A network of ``arch`` initialised as ``hp`` says, deterministic in ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = build(arch, hp["activation"], input_shape=input_shape, dropout=hp["dropout"])
        with torch.no_grad():
            for p in net.parameters():
                _init_param(p, hp["init"], hp["init_scale"])
    return net


def _init_param(p: torch.Tensor, init: str, scale: float) -> None:
    if p.dim() < 2:
        if init != "default" and p.dim() == 1 and not bool((p == 1).all()):
            p.zero_()  # biases (norm scales, all ones, are kept)
        return
    rules: dict[str, Callable[[torch.Tensor], object]] = {
        "default": lambda w: w,
        "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
        "xavier_uniform": nn.init.xavier_uniform_,
        "orthogonal": nn.init.orthogonal_,
        "normal": lambda w: nn.init.normal_(w, std=0.1),
    }
    rules[init](p)
    p.mul_(scale)


def batch_schedule(n_train: int, hp: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(subset, batches)``: the model's training subset and its ``(steps, batch)`` indices."""
    rng = np.random.default_rng([seed, 2])
    bs = min(int(hp["batch_size"]), n_train)
    k = min(n_train, max(bs, round(hp["train_fraction"] * n_train)))
    subset = rng.permutation(n_train)[:k]
    per_epoch = k // bs
    epochs = [
        rng.permutation(subset)[: per_epoch * bs].reshape(per_epoch, bs)
        for _ in range(int(hp["epochs"]))
    ]
    return subset, np.concatenate(epochs) if epochs else np.zeros((0, bs), dtype=np.int64)


# --- the job: data, training, evaluation ---------------------------------------------------


def run_job(job: TrainJob) -> list[ModelResult]:
    """Train every model of ``job``; uses the vmap trainer where the architecture allows."""
    arrays = load_dataset(job.dataset, **job.dataset_args)
    Xtr, ytr, Xte, yte = (torch.from_numpy(a) for a in arrays)
    shape = tuple(Xtr.shape[1:])
    nets = [init_model(job.arch, hp, s, shape) for hp, s in zip(job.hparams, job.seeds)]  # type: ignore[arg-type]
    plans = [batch_schedule(len(Xtr), hp, s) for hp, s in zip(job.hparams, job.seeds)]
    train = _train_vmap if ARCHITECTURES[job.arch].vmappable else _train_plain
    snaps = train(nets, job.hparams, plans, Xtr, ytr, job.seeds)
    return _results(job, nets[0], snaps, plans, (Xtr, ytr, Xte, yte))


def _results(
    job: TrainJob,
    template: ZooNet,
    snaps: list[dict[int, State]],
    plans: list[tuple[np.ndarray, np.ndarray]],
    data: tuple[torch.Tensor, ...],
) -> list[ModelResult]:
    Xtr, ytr, Xte, yte = data
    out = []
    for i, model_id in enumerate(job.ids):
        final = job.hparams[i]["epochs"]
        saved = sorted({e for e in job.save_epochs if e <= final} | {final})
        res = ModelResult(model_id)
        for e, state in snaps[i].items():
            res.test_acc[e] = accuracy(template, state, Xte, yte)
            if e in saved:
                sub = torch.from_numpy(plans[i][0])
                res.train_acc[e] = accuracy(template, state, Xtr[sub], ytr[sub])
                res.weights[e] = {k: v.numpy() for k, v in state.items()}
        out.append(res)
    return out


@torch.no_grad()
def accuracy(template: nn.Module, state: State, X: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of ``template`` with ``state`` loaded, in eval mode."""
    was = template.training
    template.eval()
    logits = functional_call(template, state, (X,))
    template.train(was)
    return float((logits.argmax(1) == y).float().mean())


def _snapshot(net: nn.Module) -> State:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# --- one model at a time with torch.optim (BatchNorm, ViT; the reference) --------------------


def make_optimizer(params: Any, hp: dict[str, Any]) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer that ``hp`` names."""
    lr, wd = hp["lr"], hp["l2"]
    if hp["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    if hp["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if hp["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)


def _train_plain(
    nets: list[ZooNet],
    hparams: list[dict[str, Any]],
    plans: list[tuple[np.ndarray, np.ndarray]],
    X: torch.Tensor,
    y: torch.Tensor,
    seeds: list[int],
) -> list[dict[int, State]]:
    return [
        _train_one(net, hp, plan[1], X, y, seed)
        for net, hp, plan, seed in zip(nets, hparams, plans, seeds)
    ]


def _train_one(
    net: ZooNet,
    hp: dict[str, Any],
    batches: np.ndarray,
    X: torch.Tensor,
    y: torch.Tensor,
    seed: int,
) -> dict[int, State]:
    opt = make_optimizer(net.parameters(), hp)
    schedule, total = hp.get("schedule", "constant"), len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(schedule, t, total))
    smoothing = float(hp.get("label_smoothing", 0.0))
    per_epoch = len(batches) // max(int(hp["epochs"]), 1)
    snaps = {0: _snapshot(net)}
    net.train()
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)  # dropout masks
        for t, idx in enumerate(torch.from_numpy(batches)):
            opt.zero_grad()
            loss = F.cross_entropy(net(X[idx]), y[idx], label_smoothing=smoothing)
            loss.backward()
            opt.step()
            sched.step()
            if (t + 1) % per_epoch == 0:
                snaps[(t + 1) // per_epoch] = _snapshot(net)
    return snaps


# --- many models at once: vmap over stacked parameters ---------------------------------------


class StackedOptimizer:
    """SGD (momentum 0.9), Adam, AdamW and RMSprop on stacked parameters, each model its own
    optimizer, learning rate and weight decay, with the update rules of ``torch.optim``."""

    def __init__(self, hparams: list[dict[str, Any]], params: State) -> None:
        kinds = [hp["optimizer"] for hp in hparams]
        self.lr = torch.tensor([hp["lr"] for hp in hparams], dtype=torch.float32)
        self.wd = torch.tensor([hp["l2"] for hp in hparams], dtype=torch.float32)
        self.kind = {k: torch.tensor([x == k for x in kinds]) for k in OPTIMIZERS}
        self.state = {n: [torch.zeros_like(p) for _ in range(3)] for n, p in params.items()}
        self.t = 0

    @torch.no_grad()
    def step(
        self,
        params: State,
        grads: State,
        active: torch.Tensor,
        factor: torch.Tensor | None = None,
    ) -> None:
        """One step for the models where ``active`` is True; the others stay as they are.
        ``factor``: each model's learning-rate multiplier at this step (its schedule)."""
        self.t += 1
        lr = self.lr if factor is None else self.lr * factor
        decoupled = self.kind["adamw"]
        for name, p in params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)
            keep = active.view(shape)
            is_sgd = self.kind["sgd"].view(shape)
            is_adam = (self.kind["adam"] | decoupled).view(shape)
            wd = self.wd.view(shape)
            is_w = decoupled.view(shape)
            g = grads[name] + torch.where(is_w, torch.zeros_like(wd), wd) * p
            # AdamW decays the weights themselves first: p <- p * (1 - lr * wd)
            p.mul_(torch.where(keep & is_w, 1 - lr.view(shape) * wd, torch.ones_like(wd)))
            buf, m, v = self.state[name]
            new = self._moments(g, buf, m, v)
            steps = self._steps(g, new, lr.view(shape))
            step = torch.where(is_sgd, steps[0], torch.where(is_adam, steps[1], steps[2]))
            p.sub_(torch.where(keep, step, torch.zeros_like(step)))
            buf.copy_(torch.where(keep & is_sgd, new[0], buf))
            m.copy_(torch.where(keep & is_adam, new[1], m))
            v.copy_(torch.where(keep, torch.where(is_adam, new[2], new[3]), v))

    def _moments(
        self, g: torch.Tensor, buf: torch.Tensor, m: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """(momentum buffer, Adam's first and second moments, RMSprop's square average)."""
        new_buf = buf * 0.9 + g if self.t > 1 else g
        return new_buf, m.lerp(g, 0.1), v * 0.999 + g * g * 0.001, v * 0.99 + g * g * 0.01

    def _steps(
        self, g: torch.Tensor, new: tuple[torch.Tensor, ...], lr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bc1, bc2 = 1 - 0.9**self.t, 1 - 0.999**self.t
        adam = new[1] / (new[2].sqrt() / math.sqrt(bc2) + 1e-8) * (lr / bc1)
        rms = g / (new[3].sqrt() + 1e-8) * lr
        return lr * new[0], adam, rms


def _stack(nets: list[ZooNet]) -> State:
    names = [n for n, _ in nets[0].named_parameters()]
    return {
        n: torch.stack([dict(net.named_parameters())[n].detach() for net in nets]) for n in names
    }


def _model_forward(template: ZooNet) -> Callable[..., torch.Tensor]:
    """``f(params, x, mask)`` for one model: the template's body, the dropout mask, the head."""

    def f(params: State, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        body = {k[5:]: v for k, v in params.items() if k.startswith("body.")}
        head = {k[5:]: v for k, v in params.items() if k.startswith("head.")}
        feats = functional_call(template.body, body, (x,))
        return functional_call(template.head, head, (feats * mask,))

    return f


def _padded_schedule(plans: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, np.ndarray]:
    """All models' batches as one ``(models, steps, batch)`` tensor, padded with index 0."""
    steps = np.array([len(b) for _, b in plans])
    bs = plans[0][1].shape[1]
    sched = np.zeros((len(plans), int(steps.max()), bs), dtype=np.int64)
    for i, (_, b) in enumerate(plans):
        sched[i, : len(b)] = b
    return torch.from_numpy(sched), steps


def _train_vmap(
    nets: list[ZooNet],
    hparams: list[dict[str, Any]],
    plans: list[tuple[np.ndarray, np.ndarray]],
    X: torch.Tensor,
    y: torch.Tensor,
    seeds: list[int],
) -> list[dict[int, State]]:
    params = _stack(nets)
    opt = StackedOptimizer(hparams, params)
    sched, steps = _padded_schedule(plans)
    per_epoch = np.array(
        [max(len(b) // max(hp["epochs"], 1), 1) for (_, b), hp in zip(plans, hparams)]
    )
    drop = torch.tensor([hp["dropout"] for hp in hparams], dtype=torch.float32).view(-1, 1, 1)
    smooth = torch.tensor(
        [float(hp.get("label_smoothing", 0.0)) for hp in hparams], dtype=torch.float32
    ).view(-1, 1)
    scheduled = any(hp.get("schedule", "constant") != "constant" for hp in hparams)
    forward = vmap(_model_forward(nets[0]))
    n_feat = nets[0].head.in_features
    gen = torch.Generator().manual_seed(int(seeds[0]) + 1)
    snaps: list[dict[int, State]] = [{0: _row(params, i)} for i in range(len(nets))]
    for t in range(sched.shape[1]):
        idx = sched[:, t]
        mask = (torch.rand(len(nets), idx.shape[1], n_feat, generator=gen) >= drop) / (1 - drop)
        leaves = {k: v.requires_grad_() for k, v in params.items()}
        logp = forward(leaves, X[idx], mask).log_softmax(-1)  # (models, batch, classes)
        nll = -logp.gather(-1, y[idx].unsqueeze(-1)).squeeze(-1)
        loss = (1 - smooth) * nll - smooth * logp.mean(-1)  # = F.cross_entropy's smoothing
        grads = torch.autograd.grad(loss.mean(1).sum(), list(leaves.values()))
        params = {k: v.detach() for k, v in leaves.items()}
        factor = _factors(hparams, steps, t) if scheduled else None
        opt.step(params, dict(zip(params, grads)), torch.from_numpy(t < steps), factor)
        for i in np.flatnonzero(((t + 1) % per_epoch == 0) & (t + 1 <= steps)):
            snaps[i][(t + 1) // int(per_epoch[i])] = _row(params, int(i))
    return snaps


def _row(params: State, i: int) -> State:
    return {k: v[i].detach().clone() for k, v in params.items()}
