"""Prune Optuna trials by what their weights predict: :class:`SNEPruner` and :func:`report_weights`.

Needs the ``optuna`` extra (``pip install 'sne-plugin[optuna]'``); ``import sne_plugin``
never imports optuna, only this sub-package does.

>>> import optuna
>>> from sne_plugin.integrations.optuna import SNEPruner, report_weights
>>> study = optuna.create_study(direction="maximize", pruner=SNEPruner(n_min_trials=8))
"""

from __future__ import annotations

from sne_plugin._imports import optional_import

# a clear "pip install 'sne-plugin[optuna]'" message when missing
optional_import("optuna", extra="optuna")

from ._model import default_regressor  # noqa: E402
from ._pruner import SNEPruner  # noqa: E402
from ._report import report_weights  # noqa: E402

__all__ = ["SNEPruner", "default_regressor", "report_weights"]
