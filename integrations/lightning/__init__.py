"""Prune Optuna trials that train a Lightning module: :class:`SNEPruningCallback`.

Needs the ``lightning`` extra (``pip install 'sne-plugin[lightning]'``, which brings optuna
too).
"""

from __future__ import annotations

from sne_plugin._imports import optional_import

optional_import("lightning", extra="lightning")
optional_import("optuna", extra="lightning")

from ._callback import SNEPruningCallback  # noqa: E402

__all__ = ["SNEPruningCallback"]
