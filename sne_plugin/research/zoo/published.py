"""Loaders for published zoos, returning zoo objects with the :class:`BaseZoo` interface.

Unterthiner et al., "Predicting Neural Network Accuracy from Weights" (Small CNN Zoo), one
folder per zoo:

- ``weights.npy``: one flattened row per checkpoint, TensorFlow order (conv kernels
  ``H x W x in x out``, dense ``in x out``);
- ``metrics.csv.gz``: one row per checkpoint, aligned with ``weights.npy``: ``step``,
  ``test_accuracy``, ``train_accuracy``, ``config.*`` hyperparameters ...;
- ``layout.csv``: one row per tensor in row order: ``varname``, ``start_idx`` (or
  ``offset``), ``shape`` (e.g. ``(3, 3, 1, 16)``).

Schürholt et al., "Model Zoos" (NeurIPS 2022 datasets): one folder per model, each with
``result.json`` (one JSON object per epoch, with ``test_acc``), optional ``params.json`` and
``checkpoint_000XYZ/checkpoints`` (a torch state dict after epoch XYZ).
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sne_plugin.errors import SNEError
from sne_plugin.readers.state_dict import read_state_dict
from sne_plugin.research.zoo.store import BaseZoo
from sne_plugin.weights import LayerKind, NetworkWeights

__all__ = [
    "PublishedZoo",
    "SmallCNNZooNet",
    "load_model_zoo",
    "load_small_cnn_zoo",
    "nfn_split_indices",
]


class PublishedZoo(BaseZoo):
    """Records plus weights held in memory, for zoos read from published files."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        nets: dict[int | str, list[NetworkWeights]],
        hparam_keys: tuple[str, ...],
        source: str,
    ) -> None:
        self.records, self._nets, self.source = records, nets, source
        self.hparam_keys = hparam_keys
        self.hparam_space = {
            k: sorted({str(r[k]) for r in records})
            for k in hparam_keys
            if not all(_is_number(r.get(k)) for r in records)
        }

    def weights(self, epoch: int | str = "final") -> list[NetworkWeights]:
        """The networks at ``epoch`` in record order (the epochs loaded: see ``epochs``)."""
        if epoch not in self._nets:
            raise SNEError(
                f"{self.source}: no weights loaded for epoch {epoch!r}; loaded: {list(self._nets)}"
            )
        return list(self._nets[epoch])

    @property
    def epochs(self) -> list[int | str]:
        return list(self._nets)

    def _hparam_row(self, record: dict[str, Any]) -> list[float]:
        return super()._hparam_row(
            {k: (str(v) if k in self.hparam_space else v) for k, v in record.items()}
        )


def _is_number(v: object) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


# --- Small CNN Zoo ----------------------------------------------------------------------------


def nfn_split_indices(n: int) -> dict[str, list[int]]:
    """The split of NFN (Zhou et al. 2023) and later papers over the final checkpoints: the
    last half is test; the first half is shuffled with ``random.Random(0)``, 80% train, 20% val.

    >>> s = nfn_split_indices(10)
    >>> s["test"], sorted(s["train"] + s["val"]), len(s["val"])
    ([5, 6, 7, 8, 9], [0, 1, 2, 3, 4], 1)
    """
    cut = n // 2
    trainval = list(range(cut))
    random.Random(0).shuffle(trainval)
    k = int(0.8 * len(trainval))
    return {"train": trainval[:k], "val": trainval[k:], "test": list(range(cut, n))}


def _read_layout(file: Path) -> list[tuple[str, int, tuple[int, ...]]]:
    if not file.is_file():
        raise SNEError(f"missing {file.name} in {file.parent} (expected a Small CNN Zoo folder)")
    with open(file, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for i, row in enumerate(rows):
        start = row.get("start_idx", row.get("offset"))
        if "varname" not in row or start is None or "shape" not in row:
            raise SNEError(
                f"{file}, row {i + 2}: expected columns varname, start_idx (or "
                f"offset), shape; got {sorted(row)}"
            )
        shape = tuple(int(x) for x in re.findall(r"\d+", row["shape"]))
        out.append((row["varname"], int(start), shape))
    return out


def _read_metrics(file: Path) -> list[dict[str, str]]:
    if not file.is_file():
        raise SNEError(f"missing {file.name} in {file.parent} (expected a Small CNN Zoo folder)")
    with gzip.open(file, "rt", newline="") as f:
        return list(csv.DictReader(f))


def _tf_row_to_state(
    row: np.ndarray, layout: list[tuple[str, int, tuple[int, ...]]], where: str
) -> dict[str, torch.Tensor]:
    """Kernels and biases of one flattened row, in torch layout, as a state dict whose keys
    are ``<kernel name>.weight`` / ``.bias`` in layout order."""
    state: dict[str, torch.Tensor] = {}
    last: str | None = None
    for name, start, shape in layout:
        t = torch.from_numpy(np.array(row[start : start + math.prod(shape)], dtype=np.float32))
        t = t.reshape(shape)
        if len(shape) == 1:
            if last is None or f"{last}.bias" in state:
                raise SNEError(f"{where}: bias {name!r} has no kernel before it in layout.csv")
            state[f"{last}.bias"] = t
            continue
        if len(shape) == 4:
            t = t.permute(3, 2, 0, 1)
        elif len(shape) == 2:
            t = t.t()
        else:
            raise SNEError(f"{where}: tensor {name!r} has unsupported shape {shape}")
        last = name.replace(".", "_")
        state[f"{last}.weight"] = t.contiguous()
    return state


def load_small_cnn_zoo(
    path: str | os.PathLike[str], *, step: int | str = "final", split: str | None = None
) -> PublishedZoo:
    """Unterthiner et al.'s Small CNN Zoo at checkpoint ``step`` (``"final"``: the largest).

    ``split`` (``"train"``, ``"val"``, ``"test"``) applies :func:`nfn_split_indices` to the
    checkpoints of that step that are finite. Records carry ``id`` (the row in
    ``weights.npy``), ``step``, ``test_acc``, ``train_acc`` and the ``config.*`` columns
    without their prefix; ``weights()`` returns them in torch layout.
    """
    root = Path(path)
    layout = _read_layout(root / "layout.csv")
    metrics = _read_metrics(root / "metrics.csv.gz")
    if not (root / "weights.npy").is_file():
        raise SNEError(f"missing weights.npy in {root} (expected a Small CNN Zoo folder)")
    data = np.load(root / "weights.npy", mmap_mode="r", allow_pickle=False)
    if data.ndim != 2 or len(data) != len(metrics):
        raise SNEError(
            f"{root}: weights.npy has shape {data.shape} but metrics.csv.gz has "
            f"{len(metrics)} rows (expected one row each per checkpoint)"
        )
    rows = _select_rows(metrics, data, step, root)
    if split is not None:
        parts = nfn_split_indices(len(rows))
        if split not in parts:
            raise SNEError(f"unknown split {split!r}; expected one of {list(parts)}")
        rows = [rows[i] for i in parts[split]]
    records = [_small_cnn_record(i, metrics[i]) for i in rows]
    nets = [
        read_state_dict(
            _tf_row_to_state(data[i], layout, f"{root}, row {i}"), source=f"{root}/weights.npy[{i}]"
        )
        for i in rows
    ]
    keys = tuple(sorted({k for r in records for k in r if k.startswith("hp.")}))
    return PublishedZoo(records, {"final": nets}, keys, str(root))


def _select_rows(
    metrics: list[dict[str, str]], data: np.ndarray, step: int | str, root: Path
) -> list[int]:
    steps = [int(float(m["step"])) for m in metrics]
    wanted = max(steps) if step == "final" else int(step)
    rows = [i for i, s in enumerate(steps) if s == wanted]
    if not rows:
        raise SNEError(f"{root}: no checkpoint at step {step!r}; steps: {sorted(set(steps))}")
    return [i for i in rows if np.isfinite(data[i]).all()]


def _small_cnn_record(i: int, m: dict[str, str]) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": i,
        "step": int(float(m["step"])),
        "test_acc": float(m["test_accuracy"]),
    }
    if "train_accuracy" in m:
        rec["train_acc"] = float(m["train_accuracy"])
    for k, v in m.items():
        if k.startswith("config."):
            rec[k[len("config.") :]] = rec[f"hp.{k[len('config.') :]}"] = (
                float(v) if _is_number(v) else v
            )
    return rec


class SmallCNNZooNet(nn.Module):
    """The Small CNN Zoo network in torch: stride-2 convs with TensorFlow "SAME" padding,
    global average pooling, one dense layer. Load it from NetworkWeights with
    :meth:`from_weights`."""

    def __init__(
        self,
        channels: tuple[int, ...] = (1, 16, 16, 16),
        num_classes: int = 10,
        kernel: int = 3,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, kernel, stride=2) for a, b in itertools.pairwise(channels)
        )
        self.head = nn.Linear(channels[-1], num_classes)
        self.act = {"relu": nn.ReLU(), "tanh": nn.Tanh()}.get(activation, nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            assert isinstance(conv, nn.Conv2d)
            x = self.act(conv(_tf_same_pad(x, conv.kernel_size[0], conv.stride[0])))
        return self.head(x.mean(dim=(2, 3)))

    @classmethod
    def from_weights(cls, net: NetworkWeights, activation: str = "relu") -> SmallCNNZooNet:
        convs = [layer for layer in net if layer.kind is LayerKind.CONV2D]
        chans = (convs[0].weight.shape[1], *(c.weight.shape[0] for c in convs))
        head = net.layers[-1]
        model = cls(chans, head.weight.shape[0], convs[0].weight.shape[-1], activation)
        with torch.no_grad():
            for module, layer in zip([*model.convs, model.head], [*convs, head]):
                module.weight.copy_(layer.weight)
                if layer.bias is not None:
                    module.bias.copy_(layer.bias)
        return model


def _tf_same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


# --- Schürholt et al. Model Zoos ---------------------------------------------------------------


def load_model_zoo(
    path: str | os.PathLike[str], *, epochs: tuple[int | str, ...] = ("final",)
) -> PublishedZoo:
    """A Schürholt et al. model zoo: every sub-folder with a ``result.json`` is one model.

    Records carry ``id``, ``name`` (the folder), ``test_acc`` / ``train_acc`` at the last
    epoch, ``acc_by_epoch`` and the scalar entries of ``params.json``; ``weights(epoch)`` is
    available for the ``epochs`` asked for (``"final"``: each model's last checkpoint).
    """
    root = Path(path)
    folders = sorted(p.parent for p in root.glob("*/result.json"))
    if not folders:
        raise SNEError(f"{root}: no model folders (expected sub-folders with result.json)")
    records: list[dict[str, Any]] = []
    nets: dict[int | str, list[NetworkWeights]] = {e: [] for e in epochs}
    for i, folder in enumerate(folders):
        rec, checkpoints = _model_zoo_entry(i, folder)
        records.append(rec)
        for e in epochs:
            nets[e].append(_checkpoint_weights(folder, checkpoints, e))
    keys = tuple(sorted({k for r in records for k in r if k.startswith("hp.")}))
    return PublishedZoo(records, nets, keys, str(root))


def _model_zoo_entry(i: int, folder: Path) -> tuple[dict[str, Any], dict[int, Path]]:
    lines = [json.loads(s) for s in (folder / "result.json").read_text().splitlines() if s.strip()]
    if not lines:
        raise SNEError(f"{folder}/result.json: no results")
    acc = {int(r.get("epoch", r.get("training_iteration", n + 1))): r for n, r in enumerate(lines)}
    last = acc[max(acc)]
    rec: dict[str, Any] = {
        "id": i,
        "name": folder.name,
        "final_epoch": max(acc),
        "test_acc": float(last.get("test_acc", last.get("test_accuracy"))),
        "acc_by_epoch": {e: r.get("test_acc") for e, r in acc.items()},
    }
    if "train_acc" in last:
        rec["train_acc"] = float(last["train_acc"])
    params = folder / "params.json"
    if params.is_file():
        for k, v in json.loads(params.read_text()).items():
            if isinstance(v, (int, float, str, bool)):
                rec[k] = rec[f"hp.{k}"] = v
    checkpoints = {
        int(p.parent.name.split("_")[-1]): p for p in folder.glob("checkpoint_*/checkpoints")
    }
    return rec, checkpoints


def _checkpoint_weights(
    folder: Path, checkpoints: dict[int, Path], epoch: int | str
) -> NetworkWeights:
    if not checkpoints:
        raise SNEError(f"{folder}: no checkpoint_*/checkpoints files")
    e = max(checkpoints) if epoch == "final" else epoch
    if e not in checkpoints:
        raise SNEError(f"{folder}: no checkpoint for epoch {epoch!r}; have {sorted(checkpoints)}")
    state = torch.load(checkpoints[e], map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model_state_dict"), dict):
        state = state["model_state_dict"]
    net = read_state_dict(state, source=str(checkpoints[e]))
    net.meta.update(epoch=e)
    return net
