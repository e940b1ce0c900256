"""Run a benchmark: build the zoos, then every (task, seed) in worker processes.

A unit of work is one task at one seed: its data is loaded once and every method fitted on
it. Units run in ``workers`` spawned processes with one torch thread each (1: in-process).
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from sne_plugin.research.bench.methods import MethodResult, MethodSpec, run_method, select_methods
from sne_plugin.research.bench.tasks import TaskSpec, ZooCache, select_tasks

__all__ = ["BenchConfig", "run_benchmark"]


@dataclass
class BenchConfig:
    """What to run: profile, task and method names (``None``: all), seeds, cache, workers."""

    profile: str = "small"
    tasks: list[str] | None = None
    methods: list[str] | None = None
    seeds: int = 3
    cache: str = "runs/bench"
    workers: int = 2
    progress: bool = True
    first_seed: int = 0  # seeds are first_seed ... first_seed + seeds - 1


def _unit(config: BenchConfig, task_name: str, seed: int) -> list[MethodResult]:
    torch.set_num_threads(1)
    task = select_tasks(config.profile, [task_name])[0]
    data = task.load(ZooCache(config.cache, workers=1, progress=False), seed)
    out = []
    for method in select_methods(config.methods):
        out.append(run_method(method, task, data, seed, config.profile))
        if config.progress:
            _log(out[-1])
    return out


def _log(r: MethodResult) -> None:
    what = f"n/a ({r.na})" if r.na else f"tau {r.scores['tau']:.3f} fit {r.fit_s:.1f}s"
    print(f"[bench] {r.task} seed {r.seed} {r.method}: {what}", file=sys.stderr, flush=True)


def build_zoos(config: BenchConfig, tasks: list[TaskSpec]) -> float:
    """Build every missing zoo of ``tasks``; returns the seconds it took."""
    start = time.perf_counter()
    cache = ZooCache(config.cache, workers=config.workers, progress=config.progress)
    for spec in dict.fromkeys(z for t in tasks for z in t.zoos()):
        cache.ensure(spec)
    return time.perf_counter() - start


def run_benchmark(config: BenchConfig) -> tuple[list[MethodResult], float]:
    """All results (task, method, seed) and the seconds spent building zoos."""
    tasks = select_tasks(config.profile, config.tasks)
    methods: list[MethodSpec] = select_methods(config.methods)
    config.methods = [m.name for m in methods]
    Path(config.cache).mkdir(parents=True, exist_ok=True)
    zoo_s = build_zoos(config, tasks)
    seeds = range(config.first_seed, config.first_seed + config.seeds)
    units = [(t.name, s) for s in seeds for t in tasks]
    if config.workers <= 1:
        return [r for u in units for r in _unit(config, *u)], zoo_s
    ctx = get_context("spawn")
    with ProcessPoolExecutor(config.workers, mp_context=ctx) as ex:
        futures = [ex.submit(_unit, config, *u) for u in units]
        return [r for f in futures for r in f.result()], zoo_s
