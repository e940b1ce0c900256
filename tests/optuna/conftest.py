"""Puts this folder on ``sys.path`` so tests and spawned workers import ``sne_optuna_helpers``."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import torch  # noqa: E402

# The CI machines and this one have 2 shared cores: with 2 OpenMP threads the first
# SNERegressor fit of a process took ~24 s here against ~1.5 s with one.
torch.set_num_threads(1)
