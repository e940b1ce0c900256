"""Benchmark tasks: which zoos train a predictor, which zoo tests it, at which epoch.

Kinds of task:

- ``in_dist``: one zoo, split 80/20 at random (the split depends on the seed).
- ``cross_dataset``: train on a zoo of one dataset, test on a zoo of the same architecture
  trained on another dataset.
- ``cross_arch``: train on one or several architectures, test on a held-out one.
- ``early``: weights at an early epoch predict the final test accuracy (80/20 split).

For cross tasks each seed trains on a random 80% of the training zoo(s) and tests on the
whole test zoo. Every task yields a :class:`TaskData`: networks and targets plus side
information (hyperparameter matrices, and the test accuracy at the weights' epoch for the
learning-curve baseline).

>>> [t.name for t in PROFILES["small"]]
['in_dist', 'cross_dataset_font_digits', 'cross_arch_cnn_w8', 'early_e2']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sne_plugin.errors import SNEError
from sne_plugin.research.util import lookup
from sne_plugin.research.zoo import build_zoo, load_zoo
from sne_plugin.weights import NetworkWeights

__all__ = ["PROFILES", "TaskData", "TaskSpec", "ZooCache", "ZooSpec", "select_tasks"]

TRAIN_FRACTION = 0.8


@dataclass(frozen=True)
class ZooSpec:
    """A zoo to build (or reuse): architecture, dataset, size and build settings."""

    arch: str
    dataset: str
    n_models: int
    epochs: tuple[int, ...] = (0, 1, 2, 4)
    max_epochs: int | None = None
    dataset_args: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.arch}/{self.dataset}"

    def folder(self) -> str:
        extra = "".join(f"_{k}{v}" for k, v in self.dataset_args)
        top = "" if self.max_epochs is None else f"_max{self.max_epochs}"
        return f"{self.arch}_{self.dataset}_e{'-'.join(map(str, self.epochs))}{top}{extra}"


@dataclass
class TaskData:
    """One seed's data of a task (``H``: hyperparameters, ``curve``: acc at the weights' epoch)."""

    X_train: list[NetworkWeights]
    y_train: np.ndarray
    X_test: list[NetworkWeights]
    y_test: np.ndarray
    H_train: np.ndarray
    H_test: np.ndarray
    curve_train: np.ndarray
    curve_test: np.ndarray
    same_arch: bool


@dataclass(frozen=True)
class TaskSpec:
    """A named task: training zoos, test zoo (``None``: split the first), weights' epoch."""

    name: str
    kind: str
    train: tuple[ZooSpec, ...]
    test: ZooSpec | None = None
    epoch: int | str = "final"
    description: str = ""

    def zoos(self) -> list[ZooSpec]:
        return list(self.train) + ([self.test] if self.test else [])

    def load(self, cache: ZooCache, seed: int) -> TaskData:
        """The task's data for ``seed`` (zoos built or read through ``cache``)."""
        rng = np.random.default_rng([seed, 7])
        if self.test is None:
            part = cache.part(self.train[0], self.epoch)
            tr, te = split_indices(len(part.y), seed)
            return _task_data(part.take(tr), part.take(te))
        train = _concat([cache.part(z, self.epoch) for z in self.train])
        keep = np.sort(rng.permutation(len(train.y))[: round(TRAIN_FRACTION * len(train.y))])
        return _task_data(train.take(keep), cache.part(self.test, self.epoch))


def split_indices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded 80/20 split of ``range(n)`` into sorted, disjoint train and test indices."""
    order = np.random.default_rng([seed, 11]).permutation(n)
    k = round(TRAIN_FRACTION * n)
    return np.sort(order[:k]), np.sort(order[k:])


@dataclass
class _Part:
    """Networks of one or more zoos at one epoch, with targets and side information."""

    X: list[NetworkWeights]
    y: np.ndarray
    H: np.ndarray
    curve: np.ndarray
    archs: tuple[str, ...] = field(default_factory=tuple)

    def take(self, idx: np.ndarray) -> _Part:
        return _Part(
            [self.X[i] for i in idx],
            self.y[idx],
            self.H[idx],
            self.curve[idx],
            tuple(self.archs[i] for i in idx),
        )


def _concat(parts: list[_Part]) -> _Part:
    return _Part(
        [x for p in parts for x in p.X],
        np.concatenate([p.y for p in parts]),
        np.concatenate([p.H for p in parts]),
        np.concatenate([p.curve for p in parts]),
        tuple(a for p in parts for a in p.archs),
    )


def _task_data(train: _Part, test: _Part) -> TaskData:
    same = len(set(train.archs) | set(test.archs)) == 1
    return TaskData(
        train.X, train.y, test.X, test.y, train.H, test.H, train.curve, test.curve, same
    )


class ZooCache:
    """Builds missing zoos under ``root`` and keeps loaded networks in memory."""

    def __init__(
        self, root: str | os.PathLike[str], *, workers: int = 2, progress: bool = True
    ) -> None:
        self.root = Path(root)
        self.workers = workers
        self.progress = progress
        self._parts: dict[tuple[ZooSpec, int | str], _Part] = {}

    def ensure(self, spec: ZooSpec) -> Path:
        """The zoo's folder, built (or completed) first if needed."""
        path = self.root / spec.folder()
        done = _n_done(path)
        if done < spec.n_models:
            build_zoo(
                path,
                arch=spec.arch,
                dataset=spec.dataset,
                n_models=spec.n_models,
                epochs=spec.epochs,
                seed=0,
                workers=self.workers,
                progress=self.progress,
                max_epochs=spec.max_epochs,
                dataset_args=dict(spec.dataset_args),
            )
        return path

    def part(self, spec: ZooSpec, epoch: int | str) -> _Part:
        key = (spec, epoch)
        if key not in self._parts:
            self._parts[key] = self._load(spec, epoch)
        return self._parts[key]

    def _load(self, spec: ZooSpec, epoch: int | str) -> _Part:
        zoo = load_zoo(self.ensure(spec))
        zoo.records = zoo.records[: spec.n_models]
        if epoch != "final" and any(epoch not in r["saved_epochs"] for r in zoo.records):
            raise SNEError(f"zoo {spec.label} has no weights at epoch {epoch!r}")
        at = [
            r["acc_by_epoch"][r["final_epoch"] if epoch == "final" else epoch] for r in zoo.records
        ]
        return _Part(
            zoo.weights(epoch),
            zoo.targets("test_acc"),
            zoo.hparams_matrix(),
            np.asarray(at, dtype=float),
            (spec.arch,) * len(zoo.records),
        )


def _n_done(path: Path) -> int:
    file = path / "models.jsonl"
    if not file.exists():
        return 0
    return sum(1 for line in file.read_bytes().split(b"\n") if line.strip())


# --- profiles --------------------------------------------------------------------------------


def _small() -> list[TaskSpec]:
    cnn = ZooSpec("small_cnn", "digits", 240)
    return [
        TaskSpec("in_dist", "in_dist", (cnn,), description="small_cnn/digits, 80/20 split"),
        TaskSpec(
            "cross_dataset_font_digits",
            "cross_dataset",
            (cnn,),
            ZooSpec("small_cnn", "font_digits", 120),
            description="train small_cnn/digits, test small_cnn/font_digits",
        ),
        TaskSpec(
            "cross_arch_cnn_w8",
            "cross_arch",
            (cnn, ZooSpec("cnn_d2", "digits", 80)),
            ZooSpec("cnn_w8", "digits", 100),
            description="train small_cnn+cnn_d2 (digits), test cnn_w8 (digits)",
        ),
        TaskSpec(
            "early_e2",
            "early",
            (cnn,),
            epoch=2,
            description="small_cnn/digits, epoch-2 weights -> final accuracy, 80/20",
        ),
    ]


def _full() -> list[TaskSpec]:
    cnn = ZooSpec("small_cnn", "digits", 800)
    mix = (
        ZooSpec("small_cnn", "digits", 400),
        ZooSpec("cnn_w8", "digits", 300),
        ZooSpec("cnn_d2", "digits", 300),
    )
    tasks = [TaskSpec("in_dist", "in_dist", (cnn,), description="small_cnn/digits, 80/20")]
    for ds in ("font_digits", "font_letters", "shapes"):
        tasks.append(
            TaskSpec(
                f"cross_dataset_{ds}",
                "cross_dataset",
                (cnn,),
                ZooSpec("small_cnn", ds, 400),
                description=f"train small_cnn/digits, test small_cnn/{ds}",
            )
        )
    for arch in ("cnn_k5", "mlp"):
        tasks.append(
            TaskSpec(
                f"cross_arch_{arch}",
                "cross_arch",
                mix,
                ZooSpec(arch, "digits", 300),
                description=f"train small_cnn+cnn_w8+cnn_d2, test {arch}",
            )
        )
    for e in (1, 2):
        tasks.append(
            TaskSpec(
                f"early_e{e}",
                "early",
                (cnn,),
                epoch=e,
                description=f"epoch-{e} weights -> final accuracy, 80/20",
            )
        )
    return tasks


def _smoke() -> list[TaskSpec]:
    def tiny(arch: str, dataset: str = "digits") -> ZooSpec:
        return ZooSpec(arch, dataset, 20, epochs=(0, 1), max_epochs=2, dataset_args=(("n", 300),))

    base = tiny("mlp_w16")
    return [
        TaskSpec("in_dist", "in_dist", (base,), description="tiny mlp_w16/digits"),
        TaskSpec(
            "cross_dataset_font_digits",
            "cross_dataset",
            (base,),
            tiny("mlp_w16", "font_digits"),
            description="tiny, digits -> font_digits",
        ),
        TaskSpec(
            "cross_arch_mlp_d1",
            "cross_arch",
            (base,),
            tiny("mlp_d1"),
            description="tiny, mlp_w16 -> mlp_d1",
        ),
        TaskSpec("early_e1", "early", (base,), epoch=1, description="tiny, epoch 1 -> final"),
    ]


PROFILES: dict[str, list[TaskSpec]] = {"smoke": _smoke(), "small": _small(), "full": _full()}
"""Task lists by profile: ``smoke`` (tests, seconds), ``small`` (< 15 min CPU), ``full``."""


def select_tasks(profile: str, names: list[str] | None = None) -> list[TaskSpec]:
    """The profile's tasks, or those of them named in ``names`` (with "did you mean")."""
    tasks = {t.name: t for t in lookup(PROFILES, profile, "profile")}
    return [lookup(tasks, n, "task") for n in names] if names else list(tasks.values())
