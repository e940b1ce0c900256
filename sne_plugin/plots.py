"""Figures for people who would rather look than read (``pip install 'sne-plugin[plot]'``).

* :func:`plot_predictions`: predicted against true values, with Kendall's tau;
* :func:`plot_pruning_timeline`: an Optuna study's trials, which stopped at which step, their
  curves, and SNEPruner's predictions where the trials recorded them.

Each returns the matplotlib ``Figure`` and writes it to ``path`` when one is given (PNG, SVG,
PDF: by the suffix). matplotlib is imported only when one is called, with the non-interactive
``Agg`` backend unless another is already chosen.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from sne_plugin.errors import SNEError

__all__ = ["plot_predictions", "plot_pruning_timeline"]

_PREDICTION = re.compile(r"sne:(?:prediction|rank):([0-9]{1,18})")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise SNEError("plots need matplotlib: pip install 'sne-plugin[plot]'") from None
    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        try:
            import matplotlib.pyplot as plt

            if not plt.get_fignums():  # nothing of the user's is open: no window needed
                matplotlib.use("Agg")
        except Exception:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig


def plot_predictions(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    *,
    path: str | os.PathLike[str] | None = None,
    title: str = "SNE: predicted against true",
    label: str = "accuracy",
) -> Any:
    """A scatter of ``y_pred`` against ``y_true``, the diagonal, and Kendall's tau (how
    often a pair of networks is ordered right, from -1 to 1) in the title.

    >>> fig = plot_predictions([0.2, 0.5, 0.9], [0.3, 0.4, 0.8])
    >>> fig.axes[0].get_title()
    'SNE: predicted against true (n=3, Kendall tau 1.00)'
    """
    from scipy.stats import kendalltau

    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if len(t) != len(p) or not len(t):
        raise SNEError(
            f"expected y_true and y_pred of one non-zero length, got {len(t)} and {len(p)}"
        )
    ok = np.isfinite(t) & np.isfinite(p)
    if not ok.any():
        raise SNEError(f"expected finite values, got none among {len(t)} pairs")
    tau = kendalltau(t[ok], p[ok]).statistic if ok.sum() > 1 else math.nan
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(t[ok], p[ok], s=14, alpha=0.75, color="C0")
    lo = float(min(t[ok].min(), p[ok].min()))
    hi = float(max(t[ok].max(), p[ok].max()))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, ls="--", label="predicted = true")
    tau_text = "nan" if not np.isfinite(tau) else f"{tau:.2f}"
    ax.set_title(f"{title} (n={int(ok.sum())}, Kendall tau {tau_text})", fontsize=9)
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def plot_pruning_timeline(
    study: Any,
    *,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Any:
    """An Optuna study at a glance: left, each trial as a bar from its first to its last
    reported step (green: completed, red with a cross: pruned there, grey: running or
    failed), with SNEPruner's last word on it written at the end where the trial recorded
    one (user attributes ``sne:rank:<step>``, the share of its peers it scored above, from the
    default pruner; ``sne:prediction:<step>`` from a weights-only regressor); right, the
    trials' intermediate values against the step.

    ``study`` is an ``optuna.Study`` or a list of ``FrozenTrial``.

    >>> import optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> s = optuna.create_study(direction="maximize")
    >>> for q in (0.5, 0.9):
    ...     t = s.ask()
    ...     for step in range(3):
    ...         t.report(q * (step + 1) / 3, step)
    ...     _ = s.tell(t, q)
    >>> fig = plot_pruning_timeline(s)
    >>> fig.axes[0].get_title()
    '2 trials: 2 completed, 0 pruned'
    """
    from optuna.trial import TrialState

    trials = list(study.get_trials(deepcopy=False)) if hasattr(study, "get_trials") else study
    if not trials:
        raise SNEError("expected a study with at least one trial, got none")
    colors = {TrialState.COMPLETE: "tab:green", TrialState.PRUNED: "tab:red"}
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, max(3.0, 0.22 * len(trials) + 1.5)))
    n_done = sum(t.state == TrialState.COMPLETE for t in trials)
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    for t in trials:
        color = colors.get(t.state, "0.6")
        steps = sorted(t.intermediate_values)
        if steps:
            left.plot([steps[0], steps[-1]], [t.number, t.number], color=color, lw=3, alpha=0.8)
            if len(steps) == 1:  # a bar of no length: a dot shows it
                left.plot(steps, [t.number], "o", color=color, ms=3)
            values = [t.intermediate_values[s] for s in steps]
            right.plot(steps, values, color=color, lw=1, alpha=0.7, marker=".", ms=3)
            if t.state == TrialState.PRUNED:
                left.plot([steps[-1]], [t.number], "x", color="black", ms=6)
        predictions = {
            int(m.group(1)): v
            for k, v in t.user_attrs.items()
            for m in [_PREDICTION.fullmatch(k)]
            if m and isinstance(v, (int, float)) and math.isfinite(v)
        }
        if predictions and steps:
            last = max(predictions)
            left.annotate(
                f"{predictions[last]:.2f}",
                (steps[-1], t.number),
                xytext=(4, -3),
                textcoords="offset points",
                fontsize=6,
            )
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("step")
    left.set_ylabel("trial (number)")
    left.invert_yaxis()
    left.set_title(title or f"{len(trials)} trials: {n_done} completed, {n_pruned} pruned")
    right.set_xlabel("step")
    right.set_ylabel("intermediate value")
    right.set_title("curves (green completed, red pruned)")
    fig.tight_layout()
    return _save(fig, path)
