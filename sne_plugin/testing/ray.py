"""A Ray Tune trainable for tests of code that stops trials on SNE's prediction: importable
by Ray's worker processes (a function in a test file is not).

Its network's first weight is ``config["w0"]`` and never changes, so with
:class:`~sne_plugin.testing.FirstWeightPredictor` every report predicts ``w0``.
"""

from __future__ import annotations

import torch

from sne_plugin.testing import FirstWeightPredictor

__all__ = ["ITERATIONS", "first_weight_trainable"]

ITERATIONS = 4


def first_weight_trainable(config: dict[str, float]) -> None:
    """Report ``sne_prediction`` (from :func:`~sne_plugin.integrations.ray.predict_final`)
    :data:`ITERATIONS` times."""
    from ray import tune

    from sne_plugin.integrations.ray import predict_final

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        model.weight[0, 0] = config["w0"]
    for _ in range(ITERATIONS):
        tune.report({"sne_prediction": predict_final(model, FirstWeightPredictor())})
