"""Readers: turn a network in any supported form into :class:`~sne_plugin.NetworkWeights`.

Supported inputs (see each module for the exact rules):

* a ``torch.nn.Module`` (:mod:`.torch_module`; layers in registration order);
* a state dict, a list of ``(weight, bias)`` pairs or a list of arrays (:mod:`.state_dict`);
* a path to a torch checkpoint (``.pt``, ``.pth``, ``.ckpt``, ``.bin``), an ``.npz`` file of
  named arrays (read as a state dict; a zoo's ``weights/NNNNNN.npz``, which holds several
  saved epochs of one model under keys ``epoch{e}/{name}``, gives one epoch: the last, or
  the one ``epoch=`` names), a ``.safetensors`` file (read as a state dict), or an ``.onnx``
  file;
* a path to a Hugging Face ``save_pretrained`` folder (:mod:`.safetensors_reader`);
* an ``onnx.ModelProto`` (:mod:`.onnx_reader`; onnx is imported only here);
* a :class:`~sne_plugin.NetworkWeights`, returned as is.

:func:`read_weights` gives the layers as stored; :func:`read_many`, which the estimators
read their inputs with, gives the canonical form (:mod:`.canonical`: BatchNorm folded into
the layer before it, all-zero biases dropped), so that one network read from any of these
forms gives one encoding; ``read_weights(x, canonical=True)`` gives that form too.

Every failure on bad input is an :class:`~sne_plugin.SNEError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sne_plugin.errors import SNEError, describe
from sne_plugin.readers._common import check_torch_file
from sne_plugin.readers._limits import check_npz_headers
from sne_plugin.readers.canonical import (
    BatchNormStats,
    drop_zero_biases,
    module_batchnorms,
    state_dict_batchnorms,
)
from sne_plugin.readers.canonical import canonical as canonical_form
from sne_plugin.readers.onnx_reader import is_onnx_model, read_onnx
from sne_plugin.readers.safetensors_reader import read_pretrained_folder, read_safetensors
from sne_plugin.readers.state_dict import read_sequence, read_state_dict, read_torch_file
from sne_plugin.readers.torch_module import read_module
from sne_plugin.weights import NetworkWeights, checked_array, parameter_limit

__all__ = ["read_many", "read_weights", "saved_epochs"]

_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_EXPECTED = (
    "an nn.Module, a state dict, a list of (weight, bias) pairs or arrays, a path to a "
    ".pt/.pth/.ckpt/.bin/.npz/.onnx file, an onnx.ModelProto or a NetworkWeights"
)
_EPOCH_KEY = re.compile(r"epoch(\d+)/(.+)")
_BUFFER_LEAVES = ("num_batches_tracked", "running_mean", "running_var")


def read_weights(
    obj: object,
    *,
    strict: bool = True,
    max_parameters: int | None = None,
    epoch: int | None = None,
    canonical: bool = False,
) -> NetworkWeights:
    """The weights of one network, from any supported form (see the module docstring).

    With ``strict`` (the default) parameters that cannot be read raise an ``SNEError``
    naming them; with ``strict=False`` they are skipped with a warning.

    ``max_parameters`` caps what one network (and each of its tensors) may hold, checked
    before anything is allocated; default ``None``: the cap in force, 50 million
    (:data:`sne_plugin.weights.DEFAULT_MAX_PARAMETERS`) unless raised with
    :func:`sne_plugin.weights.parameter_limit`. Files are also refused when they would
    decompress to more than 100 times their size, or hold stride-0 or overlapping views,
    sparse, meta, nested, quantized or complex tensors.

    ``epoch`` chooses the saved epoch of a zoo's weights file (default: the last); the
    network's ``source`` says which epochs the file holds.

    ``canonical=True`` folds BatchNorm into the layer before it and drops all-zero biases
    (:mod:`sne_plugin.readers.canonical`), so that a module, its state dict and its ONNX
    exports give one network, as the estimators see it; the default: the layers as stored.
    A ``NetworkWeights`` is returned as is (``canonical=True``: without its zero biases; its
    BatchNorm statistics are gone, so read networks with ``canonical=True`` to fold them).

    >>> from torch import nn
    >>> net = read_weights(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(16, 2)))
    >>> [(layer.kind.value, layer.spec.weight_shape) for layer in net]
    [('conv2d', (4, 1, 3, 3)), ('dense', (2, 16))]
    """
    if epoch is not None and not isinstance(obj, (str, os.PathLike)):
        raise SNEError(
            f"epoch={epoch!r} chooses a saved epoch of a zoo's weights file (.npz), "
            f"but got {describe(obj)}, not a path"
        )
    with parameter_limit(max_parameters):
        if isinstance(obj, NetworkWeights):  # already read: only its zero biases can go
            return drop_zero_biases(obj) if canonical else obj
        net, batchnorms = _read(obj, strict=strict, epoch=epoch, canonical=canonical)
        return canonical_form(net, batchnorms) if canonical else net


_Read = tuple[NetworkWeights, list[BatchNormStats]]


def _read(obj: object, *, strict: bool, epoch: int | None, canonical: bool) -> _Read:
    """The network as stored, and the BatchNorms its canonical form folds."""
    if isinstance(obj, nn.Module):
        net = read_module(obj, strict=strict)
        return net, module_batchnorms(obj) if canonical else []
    if isinstance(obj, (str, os.PathLike)):
        return _read_path(Path(obj), strict=strict, epoch=epoch, canonical=canonical)
    if is_onnx_model(obj):
        return read_onnx(obj, strict=strict, canonical=canonical), []
    if isinstance(obj, Mapping):
        net = _with_naming_hint(obj, lambda: read_state_dict(obj, strict=strict))
        return net, state_dict_batchnorms(obj, net)
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        raise SNEError(
            f"expected a network ({_EXPECTED}), got a single {describe(obj)}; "
            "wrap a one-layer network's weight in a list: [weight]"
        )
    if isinstance(obj, Sequence) and not isinstance(obj, bytes):
        return read_sequence(obj), []
    raise SNEError(f"expected {_EXPECTED}, got {describe(obj)}")


def _read_path(path: Path, *, strict: bool, epoch: int | None, canonical: bool) -> _Read:
    if not path.exists():
        raise SNEError(f"expected a path to an existing file, got {str(path)!r} (no such file)")
    if path.is_dir():
        return read_pretrained_folder(path, strict=strict), []
    if not path.is_file():
        raise SNEError(f"expected a path to a file or a folder, got {str(path)!r}")
    suffix = path.suffix.lower()
    if epoch is not None and suffix != ".npz":
        raise SNEError(
            f"{path}: epoch={epoch!r} chooses a saved epoch of a zoo's weights file (.npz "
            f"with keys epoch{{e}}/{{name}}), got a {suffix or 'suffix-less'} file"
        )
    if suffix == ".safetensors":
        return read_safetensors(path, strict=strict), []
    if suffix == ".onnx":
        return read_onnx(path, strict=strict, canonical=canonical), []
    if suffix in _TORCH_SUFFIXES:
        check_torch_file(path)
        net = read_torch_file(path, strict=strict)
        return net, _checkpoint_batchnorms(path, net) if canonical else []
    if suffix == ".npz":
        return _read_npz(path, strict=strict, epoch=epoch)
    raise SNEError(
        f"{path}: unknown file extension {path.suffix!r}; expected one of "
        f"{', '.join((*_TORCH_SUFFIXES, '.npz', '.onnx', '.safetensors'))}, or a "
        "save_pretrained folder"
    )


def _checkpoint_batchnorms(path: Path, net: NetworkWeights) -> list[BatchNormStats]:
    """The BatchNorm statistics of a checkpoint just read (loaded again, memory-mapped)."""
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except Exception:
        loaded = torch.load(path, weights_only=True, map_location="cpu")  # a legacy file
    if not isinstance(loaded, Mapping):
        return []
    for key in ("state_dict", "model_state_dict", "model"):  # as read_torch_file looks
        if isinstance(loaded.get(key), Mapping):
            return state_dict_batchnorms(loaded[key], net)
    return state_dict_batchnorms(loaded, net)


def _read_npz(path: Path, *, strict: bool, epoch: int | None) -> _Read:
    check_npz_headers(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:
        raise SNEError(
            f"{path}: expected an .npz archive of arrays, but it could not be read: {exc}"
        ) from None
    arrays, source, meta = _one_epoch(path, arrays, epoch)
    state = {key: _as_tensor(value, source, key) for key, value in arrays.items()}
    net = _with_naming_hint(state, lambda: read_state_dict(state, strict=strict, source=source))
    net.meta.update(meta)
    return net, state_dict_batchnorms(state, net)


def saved_epochs(keys: Sequence[str]) -> list[int]:
    """The epochs a zoo's weights file holds (keys ``epoch{e}/{name}``), sorted; ``[]`` when
    any key has another form (an ordinary state dict).

    >>> saved_epochs(["epoch0/fc.weight", "epoch4/fc.weight", "epoch1/fc.weight"])
    [0, 1, 4]
    """
    matches = [_EPOCH_KEY.fullmatch(key) for key in keys]
    if not matches or not all(matches):
        return []
    return sorted({int(m.group(1)) for m in matches if m})


def _one_epoch(
    path: Path, arrays: dict[str, np.ndarray], epoch: int | None
) -> tuple[dict[str, np.ndarray], str, dict[str, object]]:
    epochs = saved_epochs(list(arrays))
    if not epochs:
        if epoch is not None:
            raise SNEError(
                f"{path}: epoch={epoch!r} chooses a saved epoch of a zoo's weights file, but "
                "this file holds one network (no keys epoch{e}/{name})"
            )
        return arrays, str(path), {}
    chosen = epochs[-1] if epoch is None else epoch
    if chosen not in epochs:
        raise SNEError(f"{path}: no weights saved at epoch {chosen!r}; saved epochs: {epochs}")
    prefix = f"epoch{chosen}/"
    chosen_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    meta: dict[str, object] = {"epoch": chosen, "saved_epochs": epochs}
    return chosen_arrays, f"{path} (epoch {chosen} of {epochs})", meta


def _as_tensor(value: np.ndarray, source: str, key: str) -> object:
    """A numeric array as a tensor (so that messages show its shape); others as they are."""
    if value.dtype.kind not in "fiub" or value.ndim == 0:
        return value  # the state-dict reader refuses it with its own message
    array = checked_array(value, f"{source}, array {key!r}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _with_naming_hint(
    state: Mapping[Any, object], read: Callable[[], NetworkWeights]
) -> NetworkWeights:
    """``read()``; when it fails on named arrays none of which is named as a layer's weight
    (``w``, ``b``), the message also says how to name them."""
    try:
        return read()
    except SNEError as exc:
        keys = [k for k in state if isinstance(k, str)]
        leaves = [key.rpartition(".")[2] for key in keys]
        if not keys or len(keys) != len(state) or any("weight" in leaf for leaf in leaves):
            raise
        others = [k for k, leaf in zip(keys, leaves) if leaf not in _BUFFER_LEAVES]
        if not others:
            raise
        listed = ", ".join(f"{k!r} {_shape_text(state[k])}" for k in others[:6])
        more = f" and {len(others) - 6} more" if len(others) > 6 else ""
        raise SNEError(
            f"{exc}. The arrays {listed}{more} are not named as in a state dict (NAME.weight "
            "and NAME.bias for each layer): if they are a network's weights and biases, "
            "rename them, e.g. np.savez(PATH, **{'fc.weight': w, 'fc.bias': b}), or pass "
            "them in layer order as a list: read_weights([w, b])"
        ) from None


def _shape_text(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"(shape {tuple(shape)})" if shape is not None else f"({describe(value)})"


def read_many(X: object, *, strict: bool = True, canonical: bool = True) -> list[NetworkWeights]:
    """Read each item of ``X`` as one network (for estimators).

    ``X`` must be a list or tuple; each item is one network in any form
    :func:`read_weights` accepts. A list of lists of floats is therefore *not* a matrix:
    each inner list is one network. Errors name the item: ``"X[3]: ..."``. Networks come in
    their canonical form unless ``canonical=False`` (see :func:`read_weights`).

    >>> import torch
    >>> nets = read_many([[torch.ones(3, 2)], [torch.ones(5, 4), torch.ones(5)]])
    >>> [net.num_params for net in nets]
    [6, 25]
    """
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1:
        X = list(X)
    if not isinstance(X, (list, tuple)):
        raise SNEError(
            f"expected a list of networks (one item per network), got {describe(X)}; "
            "wrap a single network in a list: [network]"
        )
    return [_read_item(i, item, strict, canonical) for i, item in enumerate(X)]


def _read_item(index: int, item: object, strict: bool, canonical: bool) -> NetworkWeights:
    try:
        return read_weights(item, strict=strict, canonical=canonical)
    except SNEError as exc:
        raise SNEError(f"X[{index}]: {exc}") from None
