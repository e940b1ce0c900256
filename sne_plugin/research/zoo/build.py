"""``build_zoo``: sample hyperparameters, train in groups (in worker processes), store.

>>> import tempfile
>>> zoo = build_zoo(tempfile.mkdtemp() + "/z", arch="mlp_w16", n_models=2, epochs=(0, 1),
...                 max_epochs=1, workers=1, progress=False, dataset_args={"n": 200})
>>> len(zoo), zoo.weights()[0].is_chain
(2, True)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sne_plugin.errors import SNEError
from sne_plugin.research.util import lookup, text_histogram
from sne_plugin.research.zoo.architectures import ACTIVATIONS, ARCHITECTURES
from sne_plugin.research.zoo.datasets import DATASETS, load_dataset
from sne_plugin.research.zoo.store import (
    FORMAT,
    VERSION,
    Zoo,
    ZooWriter,
    architecture_spec,
    load_zoo,
)
from sne_plugin.research.zoo.train import (
    CLASSIC_OPTIMIZERS,
    HPARAM_KEYS,
    INITS,
    META_HPARAM_KEYS,
    OPTIMIZERS,
    SCHEDULES,
    SPACES,
    ModelResult,
    TrainJob,
    run_job,
    sample_hparams,
)

__all__ = ["build_zoo", "plan_jobs"]


def build_zoo(
    path: str | os.PathLike[str],
    arch: str = "small_cnn",
    dataset: str = "digits",
    n_models: int = 256,
    epochs: Sequence[int] = (0, 1, 2, 4),
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    *,
    max_epochs: int | None = None,
    group_size: int = 64,
    dataset_args: dict[str, Any] | None = None,
    activations: Sequence[str] = tuple(ACTIVATIONS),
    space: str = "classic",
) -> Zoo:
    """Build (or resume) a zoo of ``n_models`` networks at ``path`` and return it.

    Each model trains for its own number of epochs, drawn from ``max(epochs)`` to
    ``max_epochs`` (default ``2 * max(epochs)``); weights are saved at ``epochs`` and at its
    final epoch. ``workers`` processes train groups of up to ``group_size`` models (1: in this
    process). An existing folder built with the same settings is resumed. ``space``: the
    hyperparameter space, ``"classic"`` or ``"meta"`` (schedules, AdamW, label smoothing; see
    :mod:`sne_plugin.research.zoo.train`).
    """
    manifest = _manifest(
        arch, dataset, n_models, epochs, seed, max_epochs, dataset_args, activations, space
    )
    writer = ZooWriter(Path(path), manifest)
    jobs = plan_jobs(manifest, group_size)
    todo = [j for j in jobs if not set(j.ids) <= writer.done]
    n_todo = sum(len(set(j.ids) - writer.done) for j in todo)
    with _progress_bar(n_todo, progress, f"zoo {arch}/{dataset}") as bar:
        for job, results in _run(todo, workers):
            for res, hp, s in zip(results, job.hparams, job.seeds):
                if res.id not in writer.done:
                    writer.write(_record(manifest, job, res, hp, s), res.weights)
                    bar.update(1)
    zoo = load_zoo(path)
    if progress:
        print(
            f"final test accuracy of {len(zoo)} models:\n" + text_histogram(zoo.targets()),
            file=sys.stderr,
        )
    return zoo


def _manifest(
    arch: str,
    dataset: str,
    n_models: int,
    epochs: Sequence[int],
    seed: int,
    max_epochs: int | None,
    dataset_args: dict[str, Any] | None,
    activations: Sequence[str],
    space: str = "classic",
) -> dict[str, Any]:
    lookup(ARCHITECTURES, arch, "architecture")
    if space not in SPACES:
        raise SNEError(f"expected space in {SPACES}, got {space!r}")
    lookup(DATASETS, dataset, "dataset")
    for a in activations:
        lookup(ACTIVATIONS, a, "activation")
    saved = sorted({int(e) for e in epochs})
    if n_models < 1 or not saved or saved[0] < 0:
        raise SNEError(f"expected n_models >= 1 and epochs >= 0, got {n_models=}, {epochs=}")
    top = max(saved)
    max_epochs = max(2 * top, 1) if max_epochs is None else max_epochs
    if max_epochs < max(top, 1):
        raise SNEError(f"max_epochs={max_epochs} is below the largest saved epoch {top}")
    args = dict(dataset_args or {})
    X = load_dataset(dataset, seed=seed, **args)[0]
    meta = space == "meta"
    hparam_space: dict[str, list[str]] = {
        "init": list(INITS),
        "optimizer": list(OPTIMIZERS if meta else CLASSIC_OPTIMIZERS),
        "activation": list(activations),
    }
    if meta:
        hparam_space["schedule"] = list(SCHEDULES)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "dataset": dataset,
        "dataset_args": args,
        "n_models": n_models,
        "seed": seed,
        "epochs": saved,
        "min_epochs": max(top, 1),
        "max_epochs": max_epochs,
        "input_shape": list(X.shape[1:]),
        "architecture": architecture_spec(arch, X.shape[1:]),
        "hparam_keys": list(META_HPARAM_KEYS if meta else HPARAM_KEYS),
        "hparam_space": hparam_space,
    }
    if meta:  # classic manifests stay as they were, so their zoos resume
        manifest["space"] = space
    return manifest


def plan_jobs(manifest: dict[str, Any], group_size: int = 64) -> list[TrainJob]:
    """The training groups, a function of the manifest only (so a resume repeats them):
    models grouped by activation and batch size, sorted by cost, cut into ``group_size``."""
    hps = [
        sample_hparams(
            manifest["seed"],
            i,
            min_epochs=manifest["min_epochs"],
            max_epochs=manifest["max_epochs"],
            activations=tuple(manifest["hparam_space"]["activation"]),
            space=manifest.get("space", "classic"),
        )
        for i in range(manifest["n_models"])
    ]
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, hp in enumerate(hps):
        groups[(hp["activation"], hp["batch_size"])].append(i)
    jobs = []
    for key in sorted(groups):
        ids = sorted(groups[key], key=lambda i: (-hps[i]["epochs"] * hps[i]["train_fraction"], i))
        for k in range(0, len(ids), group_size):
            chunk = ids[k : k + group_size]
            jobs.append(
                TrainJob(
                    manifest["arch"],
                    manifest["dataset"],
                    {"seed": manifest["seed"], **manifest["dataset_args"]},
                    chunk,
                    [hps[i] for i in chunk],
                    [_model_seed(manifest["seed"], i) for i in chunk],
                    tuple(manifest["epochs"]),
                )
            )
    return sorted(jobs, key=lambda j: -j.cost())


def _model_seed(seed: int, model_id: int) -> int:
    return int(np.random.SeedSequence([seed, model_id]).generate_state(1)[0] % (2**31))


def _record(
    manifest: dict[str, Any], job: TrainJob, res: ModelResult, hp: dict[str, Any], seed: int
) -> dict[str, Any]:
    final = int(hp["epochs"])
    return {
        "id": res.id,
        "arch": job.arch,
        "dataset": job.dataset,
        **hp,
        "seed": seed,
        "input_shape": manifest["input_shape"],
        "final_epoch": final,
        "saved_epochs": sorted(res.weights),
        "test_acc": res.test_acc[final],
        "train_acc": res.train_acc[final],
        "acc_by_epoch": {str(e): a for e, a in sorted(res.test_acc.items())},
        "train_acc_by_epoch": {str(e): a for e, a in sorted(res.train_acc.items())},
    }


def _init_worker() -> None:
    torch.set_num_threads(1)
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker once the build that started it is gone (killed with -9, the pool
    never tells its workers, which would train on as orphans); the results it held were
    not written, and a resume trains those models again."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _run(jobs: list[TrainJob], workers: int) -> Iterator[tuple[TrainJob, list[ModelResult]]]:
    """Results job by job: in this process (``workers <= 1``) or in spawned processes."""
    if workers <= 1 or len(jobs) <= 1:
        with _one_thread():
            for job in jobs:
                yield job, run_job(job)
        return
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as ex:
        futures = {ex.submit(run_job, job): job for job in jobs}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


@contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _progress_bar(total: int, enabled: bool, desc: str) -> Iterator[Any]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, disable=not enabled, desc=desc, unit="model")
    try:
        yield bar
    finally:
        bar.close()
