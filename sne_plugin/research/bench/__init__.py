"""The generalization-prediction benchmark: tasks, methods, runner, report (``sne bench``).

>>> from sne_plugin.research import bench
>>> sorted(bench.PROFILES)
['full', 'small', 'smoke']
"""

from __future__ import annotations

from sne_plugin.research.bench.methods import METHODS, MethodResult, run_method, select_methods
from sne_plugin.research.bench.metrics import kendall_tau, scores
from sne_plugin.research.bench.runner import BenchConfig, run_benchmark
from sne_plugin.research.bench.tasks import PROFILES, TaskData, TaskSpec, ZooSpec, select_tasks

__all__ = [
    "METHODS",
    "PROFILES",
    "BenchConfig",
    "MethodResult",
    "TaskData",
    "TaskSpec",
    "ZooSpec",
    "kendall_tau",
    "run_benchmark",
    "run_method",
    "scores",
    "select_methods",
    "select_tasks",
]
