"""Shared fixtures: one tiny zoo cache (the smoke profile's zoos) per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from sne_plugin.research.bench.runner import BenchConfig, build_zoos
from sne_plugin.research.bench.tasks import ZooCache, select_tasks


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding every zoo of the smoke profile (tiny: 20 MLPs each)."""
    root = tmp_path_factory.mktemp("bench_zoos")
    config = BenchConfig("smoke", cache=str(root), workers=1, progress=False)
    build_zoos(config, select_tasks("smoke"))
    return root


@pytest.fixture(scope="session")
def zoo_cache(smoke_cache: Path) -> ZooCache:
    return ZooCache(smoke_cache, workers=1, progress=False)
