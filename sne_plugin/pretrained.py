"""The pretrained predictor: ranks the trials of a search it has never seen.

Trained once, by us, on the meta-zoo (``python -m sne_plugin.research.pretrain fit``; see
BENCHMARKS.md for what it cost and how it ranks held-out searches), and shipped inside the
package. It scores a trial at a step from two things: its weights at that step, and where its
validation curve stands among its peers' at the same step (:mod:`sne_plugin.curve`: ranks
only, so the metric's scale does not matter). The score is the curve's own rank plus a
correction learned from weights and curve together::

    score = rank_now + shrink * regressor.predict(weights, side=curve_features)

so with nothing learned it ranks as the learning curve does, and what the weights add moves
trials up or down from there. ``shrink`` was chosen on leave-out folds of the meta-zoo (by
dataset, and CNNs against MLPs): there the correction did not transfer to a dataset or a
family it was not trained on, and the shipped weight is 0, so the shipped predictor ranks by
the curve alone until a user's own fitted correction is given a weight (BENCHMARKS.md).
Scores rank trials of one search against each other; they are not accuracies.

>>> p = load_pretrained()
>>> p.features
('rank_now', 'rank_prev', 'rank_best', 'rank_delta', 'progress')
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sne_plugin.curve import CURVE_FEATURES, CurveModel
from sne_plugin.errors import SNEError

__all__ = ["PRETRAINED_DIR", "CurvePredictor", "load_pretrained"]

PRETRAINED_DIR = Path(__file__).with_name("_pretrained")
"""Where the shipped predictor lives inside the package."""

_CONFIG = "predictor.json"
_REGRESSOR = "regressor"


@dataclass
class CurvePredictor:
    """``rank_now + shrink * regressor.predict(nets, side)`` (see the module doc).

    ``regressor`` is a fitted :class:`~sne_plugin.SNERegressor` or
    :class:`~sne_plugin.wstats.WeightStatsModel` taking the
    :data:`~sne_plugin.curve.CURVE_FEATURES` as side inputs; ``info`` records how it was
    trained (data, cost, package version). ``shrink`` weighs the learned correction: the
    shipped one's was chosen by leave-out folds of the meta-zoo
    (``python -m sne_plugin.research.pretrain cv``; BENCHMARKS.md).

    Examples
    --------
    With ``shrink=0`` (as shipped) and no curve model, a trial's score is its validation
    value's rank among its peers now, the first curve feature; the networks are not read.

    >>> import numpy as np
    >>> predictor = CurvePredictor(regressor=None, shrink=0.0)
    >>> side = np.array([[0.9, 0.8, 0.9, 0.1, 0.5],    # rank_now, rank_prev, rank_best,
    ...                  [0.2, 0.3, 0.3, -0.1, 0.5]])  # rank_delta, progress
    >>> predictor.predict([None, None], side).tolist()
    [0.9, 0.2]
    """

    regressor: Any
    info: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = CURVE_FEATURES
    shrink: float = 1.0
    curve: CurveModel | None = None

    def base(self, side: np.ndarray) -> np.ndarray:
        """The score from the curve alone: the learned :class:`~sne_plugin.curve.CurveModel`'s
        predicted final rank when there is one, else ``rank_now`` (0.5 where unknown)."""
        side = np.asarray(side, dtype=np.float64)
        if self.curve is not None and len(side):
            return self.curve.predict(side)
        return np.nan_to_num(side[:, 0], nan=0.5)

    def predict(self, nets: list[Any], side: np.ndarray) -> np.ndarray:
        """One score per network; ``side`` is ``(n, 5)`` curve features (higher is better)."""
        side = self._checked(side, len(nets))
        base = self.base(side)
        if not len(nets):
            return base
        if not self.shrink:
            return base
        return base + self.shrink * np.asarray(self.regressor.predict(nets, side=side), dtype=float)

    def embed(self, nets: list[Any]) -> np.ndarray:
        """The weights' embeddings (cache them: :meth:`predict_embedded` reuses them)."""
        return np.asarray(self.regressor.transform(nets))

    def predict_embedded(self, embeddings: np.ndarray, side: np.ndarray) -> np.ndarray:
        """:meth:`predict` from embeddings made by :meth:`embed`: only the head runs."""
        side = self._checked(side, len(embeddings))
        base = self.base(side)
        if not len(embeddings):
            return base
        if not self.shrink:
            return base
        correction = np.asarray(self.regressor.predict_embedded(embeddings, side), dtype=float)
        return base + self.shrink * correction

    def fine_tuned(self, nets: list[Any], side: np.ndarray, target: np.ndarray, epochs: int) -> Any:
        """A copy tuned for ``epochs`` passes on ``(nets, side) -> target`` (percentile ranks
        of the final values within the search); this predictor is left as it is."""
        side = self._checked(side, len(nets))
        residual = np.asarray(target, dtype=float) - self.base(side)
        tuned = copy.deepcopy(self.regressor)
        tuned.set_params(verbose=False)
        for _ in range(epochs):
            tuned.partial_fit(nets, residual, side=side)
        return CurvePredictor(
            tuned, dict(self.info, fine_tuned_on=len(nets)), self.features, self.shrink, self.curve
        )

    def fine_tuned_embedded(
        self, embeddings: np.ndarray, side: np.ndarray, target: np.ndarray, epochs: int
    ) -> CurvePredictor:
        """:meth:`fine_tuned` from embeddings made by :meth:`embed` (a weight-statistics model
        only: an SNE encoder's embeddings move as it trains)."""
        if not hasattr(self.regressor, "fit_summaries"):
            raise SNEError(
                f"fine-tuning from embeddings needs a WeightStatsModel, this predictor holds a "
                f"{type(self.regressor).__name__}; use fine_tuned(nets, ...)"
            )
        side = self._checked(side, len(embeddings))
        residual = np.asarray(target, dtype=float) - self.base(side)
        tuned = copy.deepcopy(self.regressor)
        tuned.fit_summaries(embeddings, residual, side, epochs=epochs, restart=False)
        return CurvePredictor(
            tuned,
            dict(self.info, fine_tuned_on=len(embeddings)),
            self.features,
            self.shrink,
            self.curve,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the predictor to the folder ``path`` (created): config JSON and regressor."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.regressor.save(folder / _REGRESSOR)
        config = {
            "kind": "CurvePredictor",
            "model": type(self.regressor).__name__,
            "features": list(self.features),
            "shrink": self.shrink,
            "info": self.info,
        }
        if self.curve is not None:
            config["curve"] = self.curve.to_dict()
        (folder / _CONFIG).write_text(json.dumps(config, indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CurvePredictor:
        """Read a predictor written by :meth:`save`."""
        from sne_plugin.regressor import SNERegressor
        from sne_plugin.wstats import WeightStatsModel

        folder = Path(path)
        config_file = folder / _CONFIG
        if not config_file.is_file():
            raise SNEError(f"expected a saved predictor folder with {_CONFIG}, got {folder}")
        try:
            config = json.loads(config_file.read_text())
        except (OSError, ValueError) as exc:
            raise SNEError(f"{config_file}: not a readable predictor config ({exc})") from None
        if config.get("kind") != "CurvePredictor" or tuple(config.get("features", ())) != (
            CURVE_FEATURES
        ):
            raise SNEError(
                f"{config_file}: expected a CurvePredictor on features {list(CURVE_FEATURES)}, "
                f"got kind={config.get('kind')!r}, features={config.get('features')!r}"
            )
        kinds: dict[str, Any] = {"SNERegressor": SNERegressor, "WeightStatsModel": WeightStatsModel}
        model = config.get("model", "SNERegressor")
        if model not in kinds:
            raise SNEError(f"{config_file}: expected model in {sorted(kinds)}, got {model!r}")
        regressor = kinds[model].load(folder / _REGRESSOR)
        shrink = config.get("shrink", 1.0)
        if not isinstance(shrink, (int, float)) or not 0.0 <= shrink <= 1.0:
            raise SNEError(f"{config_file}: expected shrink in [0, 1], got {shrink!r}")
        curve = None
        if config.get("curve") is not None:
            if not isinstance(config["curve"], dict):
                raise SNEError(
                    f"{config_file}: expected 'curve' to be an object, got {config['curve']!r}"
                )
            curve = CurveModel.from_dict(config["curve"], where=f"{config_file} 'curve'")
        return cls(regressor, dict(config.get("info", {})), CURVE_FEATURES, float(shrink), curve)

    def _checked(self, side: np.ndarray, n: int) -> np.ndarray:
        side = np.asarray(side, dtype=np.float64)
        if side.shape != (n, len(self.features)):
            raise SNEError(
                f"expected curve features of shape ({n}, {len(self.features)}) "
                f"({', '.join(self.features)}), got shape {side.shape}"
            )
        return side


def load_pretrained(path: str | os.PathLike[str] | None = None) -> CurvePredictor:
    """The predictor shipped with the package (or the one saved at ``path``)."""
    folder = PRETRAINED_DIR if path is None else Path(path)
    if path is None and not (folder / _CONFIG).is_file():
        raise SNEError(
            f"the pretrained predictor is missing from this installation ({folder}); "
            "rebuild it with `python -m sne_plugin.research.pretrain fit`"
        )
    return CurvePredictor.load(folder)
