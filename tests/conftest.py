"""Test-wide settings."""

from __future__ import annotations

import torch

# One torch thread per test process: on a shared 2-core machine, two threads fighting with
# other processes run several times slower than one.
torch.set_num_threads(1)
