from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest
import torch

from sne_plugin.errors import SNEError
from sne_plugin.research.zoo.published import (
    SmallCNNZooNet,
    load_model_zoo,
    load_small_cnn_zoo,
    nfn_split_indices,
)


def _write_small_cnn_zoo(root, nets: list[SmallCNNZooNet], steps: list[int]) -> None:
    layout, rows = [], []
    for net in nets:
        parts = []
        for i, module in enumerate([*net.convs, net.head]):
            w = module.weight.detach()
            w = w.permute(2, 3, 1, 0) if w.dim() == 4 else w.t()  # to TF layout
            for name, t in ((f"layer{i}/kernel:0", w), (f"layer{i}/bias:0", module.bias.detach())):
                parts.append(t.contiguous().numpy().ravel())
                if len(layout) < 8:
                    start = sum(len(p) for p in parts[:-1])
                    layout.append(
                        {
                            "varname": name,
                            "start_idx": start,
                            "end_idx": start + t.numel(),
                            "size": t.numel(),
                            "shape": str(tuple(t.shape)),
                        }
                    )
        rows.append(np.concatenate(parts))
    np.save(root / "weights.npy", np.stack(rows))
    with open(root / "layout.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(layout[0]))
        w.writeheader()
        w.writerows(layout)
    with gzip.open(root / "metrics.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "modeldir",
                "step",
                "test_accuracy",
                "train_accuracy",
                "config.activation",
                "config.learning_rate",
                "config.optimizer",
            ]
        )
        for i, s in enumerate(steps):
            w.writerow(
                [
                    f"m{i // 2}",
                    s,
                    0.1 + 0.01 * i,
                    0.2,
                    "relu",
                    1e-3 * (i + 1),
                    "adam" if i % 2 else "sgd",
                ]
            )


def test_small_cnn_zoo_forward_matches(tmp_path) -> None:
    torch.manual_seed(0)
    nets = [SmallCNNZooNet() for _ in range(4)]
    _write_small_cnn_zoo(tmp_path, nets, steps=[0, 86, 0, 86])
    zoo = load_small_cnn_zoo(tmp_path)
    assert [r["id"] for r in zoo.records] == [1, 3] and len(zoo) == 2
    x = torch.randn(5, 1, 32, 32)
    for net_weights, source in zip(zoo.weights(), [nets[1], nets[3]]):
        assert net_weights.is_chain and net_weights.layers[0].weight.shape == (16, 1, 3, 3)
        loaded = SmallCNNZooNet.from_weights(net_weights)
        torch.testing.assert_close(loaded(x), source(x))
    assert zoo.targets().tolist() == pytest.approx([0.11, 0.13])
    assert zoo.hparams_matrix().shape == (2, 3)  # activation, lr, optimizer: one value each
    assert len(load_small_cnn_zoo(tmp_path, step=0)) == 2


def test_small_cnn_zoo_errors(tmp_path) -> None:
    with pytest.raises(SNEError, match=r"missing layout\.csv"):
        load_small_cnn_zoo(tmp_path)
    _write_small_cnn_zoo(tmp_path, [SmallCNNZooNet()], steps=[5])
    with pytest.raises(SNEError, match="no checkpoint at step 7"):
        load_small_cnn_zoo(tmp_path, step=7)


def test_nfn_split_is_deterministic_partition() -> None:
    s = nfn_split_indices(101)
    assert sorted(s["train"] + s["val"] + s["test"]) == list(range(101))
    assert s == nfn_split_indices(101) and s["test"][0] == 50


def test_model_zoo_folders(tmp_path) -> None:
    torch.manual_seed(0)
    for m in range(3):
        folder = tmp_path / f"NN_tune_{m:05d}"
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 10)
        )
        for epoch in (0, 5):
            ck = folder / f"checkpoint_{epoch:06d}"
            ck.mkdir(parents=True)
            torch.save(net.state_dict(), ck / "checkpoints")
        lines = [{"epoch": e, "test_acc": 0.1 * e + m / 100, "train_acc": 0.5} for e in range(1, 6)]
        (folder / "result.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        (folder / "params.json").write_text(json.dumps({"lr": 0.01 * (m + 1), "optim": "adam"}))
    zoo = load_model_zoo(tmp_path, epochs=("final", 0))
    assert len(zoo) == 3 and zoo.targets().tolist() == pytest.approx([0.5, 0.51, 0.52])
    nets = zoo.weights()
    assert [layer.kind.value for layer in nets[0]] == ["conv2d", "dense"] and nets[0].is_chain
    assert nets[0].meta["epoch"] == 5 and zoo.weights(0)[0].meta["epoch"] == 0
    assert zoo.hparams_matrix().shape == (3, 2)
    with pytest.raises(SNEError, match="no weights loaded for epoch 3"):
        zoo.weights(3)


def test_model_zoo_empty(tmp_path) -> None:
    with pytest.raises(SNEError, match="no model folders"):
        load_model_zoo(tmp_path)
