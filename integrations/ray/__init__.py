"""Stop Ray Tune trials on SNE's prediction: :func:`predict_final` and :class:`SNEStopper`.

The trainable predicts its own final value from its current weights (in its worker, with a
regressor fitted offline) and reports it beside its metrics; :class:`SNEStopper` stops, at
each training iteration, the trials whose prediction ranks below a percentile of the trials
that reached the same iteration. The reported column also works with Ray's own schedulers
(``ASHAScheduler(metric="sne_prediction", mode="max")``).

Needs the ``ray`` extra (``pip install 'sne-plugin[ray]'``).
"""

from __future__ import annotations

from sne_plugin._imports import optional_import

optional_import("ray.tune", extra="ray")

from ._stopper import SNEStopper, predict_final  # noqa: E402

__all__ = ["SNEStopper", "predict_final"]
