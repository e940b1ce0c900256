"""Where reported weights live: this process's memory, and optionally Optuna's artifact store.

A trial's weights at step ``k`` are kept in memory by the worker that reported them. With an
artifact store they are also written there (one small ``torch.save`` file per report) and the
artifact id is recorded in the trial's user attribute ``sne:weights:<k>`` as a plain string,
so any process sharing the storage and the artifact store can read them back. Without one,
the attribute is recorded as ``None`` (JSON null): the weights exist only in the reporting
process.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from typing import Any

import optuna
import torch
from optuna.artifacts import upload_artifact

from sne_plugin.readers._limits import check_bytes_expansion
from sne_plugin.weights import Layer, NetworkWeights

__all__ = ["PREDICTION_ATTR", "WEIGHTS_ATTR", "WeightsBank", "copy_weights", "weight_steps"]

WEIGHTS_ATTR = "sne:weights:"
PREDICTION_ATTR = "sne:prediction:"
_MIMETYPE = "application/x-sne-weights"
_FORMAT = 1


def weight_steps(trial: optuna.trial.FrozenTrial) -> list[int]:
    """The steps at which ``trial`` reported weights, ascending (read from its user attrs).

    >>> import optuna
    >>> t = optuna.trial.create_trial(value=1.0, user_attrs={"sne:weights:2": None, "x": 1})
    >>> weight_steps(t)
    [2]
    """
    steps = []
    for key in trial.user_attrs:
        if key.startswith(WEIGHTS_ATTR) and _STEP.fullmatch(key[len(WEIGHTS_ATTR) :]):
            steps.append(int(key[len(WEIGHTS_ATTR) :]))
    return sorted(steps)


_STEP = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() accepts '²', int() not


def copy_weights(net: NetworkWeights) -> NetworkWeights:
    """A detached float32 CPU copy, so that further training does not change what was reported."""
    layers = [
        layer.replace(_copy(layer.weight), None if layer.bias is None else _copy(layer.bias))
        for layer in net.layers
    ]
    return net.with_layers(layers)


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to(device="cpu", dtype=torch.float32).clone()


def to_bytes(net: NetworkWeights) -> bytes:
    """Serialize ``net`` with ``torch.save`` (tensors, strings and flags only)."""
    layers = [
        {"kind": layer.kind.value, "name": layer.name, "weight": layer.weight, "bias": layer.bias}
        for layer in net.layers
    ]
    payload = {"format": _FORMAT, "source": net.source, "is_chain": net.is_chain, "layers": layers}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> NetworkWeights:
    """Inverse of :func:`to_bytes` (loaded with ``weights_only=True``, after checking that the
    archive does not expand past the readers' cap; each tensor is checked as it becomes a
    :class:`Layer`)."""
    check_bytes_expansion(data, "weights artifact")
    payload: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True)
    layers = [Layer(d["kind"], d["name"], d["weight"], d["bias"]) for d in payload["layers"]]
    return NetworkWeights(tuple(layers), str(payload["source"]), bool(payload["is_chain"]))


class WeightsBank:
    """Reported weights by ``(trial id, step)``: memory first, then the artifact store.

    >>> import torch
    >>> bank = WeightsBank(None)
    >>> net = NetworkWeights.from_pairs([(torch.ones(2, 3), None)])
    >>> bank.remember(7, 0, net)
    >>> bank.cached(7, 0) is net, bank.cached(7, 1)
    (True, None)
    """

    def __init__(self, artifact_store: Any | None) -> None:
        self.artifact_store = artifact_store
        self._nets: dict[tuple[int, int], NetworkWeights] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # not picklable; a copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def remember(self, trial_id: int, step: int, net: NetworkWeights) -> None:
        with self._lock:
            self._nets[(trial_id, step)] = net

    def cached(self, trial_id: int, step: int) -> NetworkWeights | None:
        with self._lock:
            return self._nets.get((trial_id, step))

    def drop(self, trial_id: int, step: int, *, before: bool = False) -> None:
        """Forget the weights of ``trial_id`` at ``step`` (or at every step before it)."""
        with self._lock:
            if before:
                for key in [k for k in self._nets if k[0] == trial_id and k[1] < step]:
                    del self._nets[key]
            else:
                self._nets.pop((trial_id, step), None)

    def retain(self, trial_ids: Iterable[int]) -> None:
        """Forget the weights of every trial not in ``trial_ids`` (bounded memory)."""
        keep = set(trial_ids)
        with self._lock:
            self._nets = {key: net for key, net in self._nets.items() if key[0] in keep}

    def upload(self, trial: optuna.trial.Trial, net: NetworkWeights) -> str | None:
        """Write ``net`` to the artifact store; its artifact id (None without a store)."""
        if self.artifact_store is None:
            return None
        fd, path = tempfile.mkstemp(suffix=".sneweights")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(to_bytes(net))
            return upload_artifact(
                artifact_store=self.artifact_store,
                file_path=path,
                study_or_trial=trial,
                mimetype=_MIMETYPE,
            )
        finally:
            os.remove(path)

    def load(self, trial: optuna.trial.FrozenTrial, step: int) -> NetworkWeights | None:
        """The weights ``trial`` reported at ``step``: from memory, else from the artifact store.

        Returns None when they are not reachable from this process (reported by another
        worker without an artifact store). Raises when an artifact exists but cannot be read.
        """
        net = self.cached(trial._trial_id, step)
        if net is not None:
            return net
        artifact_id = trial.user_attrs.get(f"{WEIGHTS_ATTR}{step}")
        if self.artifact_store is None or not isinstance(artifact_id, str):
            return None
        with self.artifact_store.open_reader(artifact_id) as reader:
            net = from_bytes(reader.read())
        self.remember(trial._trial_id, step, net)
        return net
