"""Prune Optuna trials that train a skorch net: :class:`SNEPruningCallback`.

Needs the ``skorch`` extra (``pip install 'sne-plugin[skorch]'``, which brings optuna too).
"""

from __future__ import annotations

from sne_plugin._imports import optional_import

optional_import("skorch", extra="skorch")
optional_import("optuna", extra="skorch")

from ._callback import SNEPruningCallback  # noqa: E402

__all__ = ["SNEPruningCallback"]
