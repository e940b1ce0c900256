"""Baselines for predicting a network's generalization from its weights.

- :class:`StatNNRegressor`: per-tensor statistics -> gradient boosting (Unterthiner et al.
  2020); works across architectures by tensor position.
- :class:`FlatMLPRegressor`: an MLP on the flattened weights; one architecture per zoo.
- :class:`DeepSetsRegressor`: every scalar weight a set element; the "no hierarchy, no
  attention" ablation of the SNE encoder.

All take ``X`` as a list of networks (see :func:`sne_plugin.readers.read_many`).

>>> from sne_plugin.research import baselines
>>> sorted(baselines.__all__)
['DeepSetsRegressor', 'FlatMLPRegressor', 'StatNNRegressor']
"""

from __future__ import annotations

from sne_plugin.research.baselines._deepsets import DeepSetsRegressor
from sne_plugin.research.baselines._flat_mlp import FlatMLPRegressor
from sne_plugin.research.baselines._statnn import StatNNRegressor

__all__ = ["DeepSetsRegressor", "FlatMLPRegressor", "StatNNRegressor"]
