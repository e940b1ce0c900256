"""The vmap trainer against the one-model torch.optim reference."""

from __future__ import annotations

import pytest
import torch

from sne_plugin.research.zoo.datasets import load_dataset
from sne_plugin.research.zoo.train import (
    StackedOptimizer,
    _model_forward,
    _stack,
    _train_plain,
    _train_vmap,
    batch_schedule,
    init_model,
    make_optimizer,
    sample_hparams,
)


def _hps(n: int, activation: str = "tanh") -> list[dict]:
    hps = [
        dict(
            sample_hparams(0, i, min_epochs=1, max_epochs=1),
            batch_size=32,
            dropout=0.0,
            activation=activation,
        )
        for i in range(n)
    ]
    for i, hp in enumerate(hps):
        hp["optimizer"] = ("sgd", "adam", "rmsprop")[i % 3]
    return hps


@pytest.mark.parametrize("arch", ["small_cnn", "mlp", "resnet_tiny"])
def test_vmap_forward_equals_module(arch: str) -> None:
    hps = _hps(3)
    nets = [init_model(arch, hp, s, (1, 8, 8)) for s, hp in enumerate(hps)]
    x = torch.randn(3, 5, 1, 8, 8)
    mask = torch.ones(3, 5, nets[0].head.in_features)
    out = torch.vmap(_model_forward(nets[0]))(_stack(nets), x, mask)
    for i, net in enumerate(nets):
        net.eval()
        torch.testing.assert_close(out[i], net(x[i]), atol=1e-6, rtol=1e-5)


def test_stacked_optimizer_matches_torch_optim() -> None:
    hps = _hps(6)
    nets = [init_model("mlp", hp, s, (1, 8, 8)) for s, hp in enumerate(hps)]
    params = _stack(nets)
    stacked = StackedOptimizer(hps, params)
    opts = [make_optimizer(net.parameters(), hp) for net, hp in zip(nets, hps)]
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        grads = {k: torch.randn(v.shape, generator=gen) for k, v in params.items()}
        stacked.step(params, grads, torch.ones(6, dtype=torch.bool))
        for i, (net, opt) in enumerate(zip(nets, opts)):
            for k, p in net.named_parameters():
                p.grad = grads[k][i].clone()
            opt.step()
    for i, net in enumerate(nets):
        for k, p in net.named_parameters():
            torch.testing.assert_close(params[k][i], p.detach(), atol=2e-6, rtol=0)


def test_inactive_models_do_not_move() -> None:
    hps = _hps(2)
    params = _stack([init_model("mlp", hp, s, (1, 8, 8)) for s, hp in enumerate(hps)])
    before = {k: v.clone() for k, v in params.items()}
    opt = StackedOptimizer(hps, params)
    ones = {k: torch.ones_like(v) for k, v in params.items()}
    opt.step(params, ones, torch.tensor([True, False]))
    for k in params:
        assert torch.equal(params[k][1], before[k][1])
        assert not torch.equal(params[k][0], before[k][0])


@pytest.mark.parametrize("arch", ["small_cnn", "mlp"])
def test_vmap_training_equals_reference(arch: str) -> None:
    X, y, _, _ = (torch.from_numpy(a) for a in load_dataset("digits", n=120))
    hps = [hp for hp in _hps(6) if hp["optimizer"] != "rmsprop"]  # rmsprop amplifies float noise
    seeds = list(range(len(hps)))
    plans = [batch_schedule(len(X), hp, s) for hp, s in zip(hps, seeds)]
    fast = _train_vmap(
        [init_model(arch, hp, s, (1, 8, 8)) for hp, s in zip(hps, seeds)], hps, plans, X, y, seeds
    )
    ref = _train_plain(
        [init_model(arch, hp, s, (1, 8, 8)) for hp, s in zip(hps, seeds)], hps, plans, X, y, seeds
    )
    for a, b in zip(fast, ref):
        assert a.keys() == b.keys() == {0, 1}
        for k in a[1]:
            torch.testing.assert_close(a[1][k], b[1][k], atol=1e-5, rtol=0)  # several steps


def test_stacked_adamw_and_schedule_match_torch_optim() -> None:
    hps = [dict(h, optimizer="adamw", l2=0.05 * (i + 1)) for i, h in enumerate(_hps(3))]
    nets = [init_model("mlp", hp, s, (1, 8, 8)) for s, hp in enumerate(hps)]
    params = _stack(nets)
    stacked = StackedOptimizer(hps, params)
    opts = [make_optimizer(net.parameters(), hp) for net, hp in zip(nets, hps)]
    factors = [1.0, 0.5, 0.1, 0.01]
    gen = torch.Generator().manual_seed(0)
    for f in factors:
        grads = {k: torch.randn(v.shape, generator=gen) for k, v in params.items()}
        stacked.step(params, grads, torch.ones(3, dtype=torch.bool), torch.full((3,), f))
        for i, (net, opt) in enumerate(zip(nets, opts)):
            for group in opt.param_groups:
                group["lr"] = hps[i]["lr"] * f
            for k, p in net.named_parameters():
                p.grad = grads[k][i].clone()
            opt.step()
    for i, net in enumerate(nets):
        for k, p in net.named_parameters():
            torch.testing.assert_close(params[k][i], p.detach(), atol=2e-6, rtol=0)


def test_meta_space_vmap_training_equals_reference() -> None:
    X, y, _, _ = (torch.from_numpy(a) for a in load_dataset("digits", n=120))
    hps = [
        dict(
            sample_hparams(1, i, min_epochs=2, max_epochs=2, space="meta"),
            batch_size=32,
            dropout=0.0,
            activation="tanh",
            optimizer=("sgd", "adam", "adamw")[i % 3],
            schedule=("cosine", "warmup_cosine", "step")[i % 3],
            label_smoothing=0.1 * (i % 2),
        )
        for i in range(6)
    ]
    seeds = list(range(len(hps)))
    plans = [batch_schedule(len(X), hp, s) for hp, s in zip(hps, seeds)]
    fast = _train_vmap(
        [init_model("mlp", hp, s, (1, 8, 8)) for hp, s in zip(hps, seeds)], hps, plans, X, y, seeds
    )
    ref = _train_plain(
        [init_model("mlp", hp, s, (1, 8, 8)) for hp, s in zip(hps, seeds)], hps, plans, X, y, seeds
    )
    for a, b in zip(fast, ref):
        assert a.keys() == b.keys() == {0, 1, 2}
        for k in a[2]:
            torch.testing.assert_close(a[2][k], b[2][k], atol=2e-5, rtol=0)


def test_meta_zoo_builds_and_records_the_space(tmp_path) -> None:
    from sne_plugin.research.zoo import build_zoo

    zoo = build_zoo(
        tmp_path / "z",
        arch="conv1d",
        n_models=3,
        epochs=(1,),
        max_epochs=2,
        workers=1,
        progress=False,
        dataset_args={"n": 200},
        space="meta",
    )
    assert {"schedule", "label_smoothing"} <= set(zoo.records[0])
    assert any(n.startswith("schedule=") for n in zoo.hparam_names())
    assert zoo.hparams_matrix().shape[0] == 3
