"""``report_weights``: hand a trial's current weights to the study's :class:`SNEPruner`."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from sne_plugin.weights import NetworkWeights

from ._bank import WEIGHTS_ATTR, copy_weights
from ._pruner import SNEPruner
from ._warn import warn

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
    of the weights when the pruner has an artifact store, else ``None``. When the store or
    the storage cannot be written (a read-only or full folder, a locked database), this
    warns and the trial goes on; the weights then stay in this process. Weights that cannot
    be read at all (sparse, meta, stride-0 views...) raise an ``SNEError``.

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
    net = copy_weights(
        weights if isinstance(weights, NetworkWeights) else pruner._read_reported(weights)
    )
    pruner.bank.remember(trial._trial_id, step, net)
    _record(trial, f"{WEIGHTS_ATTR}{step}", _upload(pruner, trial, net, step))


def _upload(pruner: SNEPruner, trial: optuna.trial.Trial, net: NetworkWeights, step: int) -> Any:
    """The artifact id of ``net`` in the pruner's store; None (with a warning) when writing
    fails: a read-only or full artifact folder must not fail the trial."""
    try:
        return pruner.bank.upload(trial, net)
    except Exception as exc:
        warn(
            f"could not write the weights of trial {trial.number} at step {step} to the "
            f"artifact store ({type(exc).__name__}: {exc}); they stay in this process only"
        )
        return None


def _record(trial: optuna.trial.Trial, key: str, value: Any) -> None:
    try:
        trial.set_user_attr(key, value)
    except Exception as exc:  # storage locked, gone, or the trial finished meanwhile
        warn(
            f"could not record {key} on trial {trial.number} ({type(exc).__name__}: {exc}); "
            "the pruner will not see these weights"
        )


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
