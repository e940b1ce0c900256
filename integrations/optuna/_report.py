"""``report_weights``: hand a trial's current weights to the study's :class:`SNEPruner`."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from sne_plugin.weights import NetworkWeights

from ._bank import WEIGHTS_ATTR, copy_weights
from ._pruner import SNEPruner

__all__ = ["report_weights"]


def report_weights(
    trial: optuna.trial.Trial, weights: Any, step: int, *, pruner: SNEPruner | None = None
) -> None:
    """Report the weights of ``trial``'s network after ``step`` to the :class:`SNEPruner`.

    ``weights`` is anything :func:`sne_plugin.read_weights` reads: a torch module, a state
    dict, the path of an ONNX file, or :class:`~sne_plugin.NetworkWeights`. A detached CPU
    copy is taken, so training may go on. The trial's intermediate values are not touched.
    The pruner is ``pruner`` or the study's own (also inside a ``PatientPruner``); without
    one this warns and does nothing, so one objective serves every pruner.

    Recorded in storage: the user attribute ``sne:weights:<step>``, holding the artifact id
    of the weights when the pruner has an artifact store, else ``None``.

    Examples
    --------
    >>> import optuna, torch
    >>> from sne_plugin.integrations.optuna import SNEPruner, report_weights
    >>> study = optuna.create_study(pruner=SNEPruner())
    >>> trial = study.ask()
    >>> report_weights(trial, torch.nn.Linear(4, 2), 0)
    >>> trial.user_attrs
    {'sne:weights:0': None}
    >>> trial.should_prune()
    False
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, but got {step=}.")
    pruner = pruner if pruner is not None else _study_pruner(trial)
    if pruner is None:
        return
    net = copy_weights(_as_weights(weights))
    pruner.bank.remember(trial._trial_id, step, net)
    trial.set_user_attr(f"{WEIGHTS_ATTR}{step}", pruner.bank.upload(trial, net))


def _study_pruner(trial: optuna.trial.Trial) -> SNEPruner | None:
    pruner = getattr(getattr(trial, "study", None), "pruner", None)
    while pruner is not None and not isinstance(pruner, SNEPruner):
        pruner = getattr(pruner, "_wrapped_pruner", None)
    if pruner is None:
        warnings.warn(
            "report_weights: the study's pruner is not an SNEPruner; the weights are not kept. "
            "Pass pruner=... to report to one explicitly.",
            UserWarning,
            stacklevel=3,
        )
    return pruner


def _as_weights(obj: Any) -> NetworkWeights:
    if isinstance(obj, NetworkWeights):
        return obj
    from sne_plugin.readers import read_weights

    return read_weights(obj)
