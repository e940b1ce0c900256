"""Readers: turn a network in any supported form into :class:`~sne_plugin.NetworkWeights`.

Supported inputs (see each module for the exact rules):

* a ``torch.nn.Module`` (:mod:`.torch_module`; layers in registration order);
* a state dict, a list of ``(weight, bias)`` pairs or a list of arrays (:mod:`.state_dict`);
* a path to a torch checkpoint (``.pt``, ``.pth``, ``.ckpt``, ``.bin``), an ``.npz`` file of
  named arrays or a ``.safetensors`` file (read as a state dict), or an ``.onnx`` file;
* a path to a Hugging Face ``save_pretrained`` folder (:mod:`.safetensors_reader`);
* an ``onnx.ModelProto`` (:mod:`.onnx_reader`; onnx is imported only here);
* a :class:`~sne_plugin.NetworkWeights`, returned as is.

Every failure on bad input is an :class:`~sne_plugin.SNEError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sne_plugin.errors import SNEError, describe
from sne_plugin.readers._limits import check_npz_headers
from sne_plugin.readers.onnx_reader import is_onnx_model, read_onnx
from sne_plugin.readers.safetensors_reader import read_pretrained_folder, read_safetensors
from sne_plugin.readers.state_dict import read_sequence, read_state_dict, read_torch_file
from sne_plugin.readers.torch_module import read_module
from sne_plugin.weights import NetworkWeights, parameter_limit

__all__ = ["read_many", "read_weights"]

_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_EXPECTED = (
    "an nn.Module, a state dict, a list of (weight, bias) pairs or arrays, a path to a "
    ".pt/.pth/.ckpt/.bin/.npz/.onnx file, an onnx.ModelProto or a NetworkWeights"
)


def read_weights(
    obj: object, *, strict: bool = True, max_parameters: int | None = None
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

    >>> from torch import nn
    >>> net = read_weights(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(16, 2)))
    >>> [(layer.kind.value, layer.spec.weight_shape) for layer in net]
    [('conv2d', (4, 1, 3, 3)), ('dense', (2, 16))]
    """
    with parameter_limit(max_parameters):
        return _read(obj, strict=strict)


def _read(obj: object, *, strict: bool) -> NetworkWeights:
    if isinstance(obj, NetworkWeights):
        return obj
    if isinstance(obj, nn.Module):
        return read_module(obj, strict=strict)
    if isinstance(obj, (str, os.PathLike)):
        return _read_path(Path(obj), strict=strict)
    if is_onnx_model(obj):
        return read_onnx(obj, strict=strict)
    if isinstance(obj, Mapping):
        return read_state_dict(obj, strict=strict)
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        raise SNEError(
            f"expected a network ({_EXPECTED}), got a single {describe(obj)}; "
            "wrap a one-layer network's weight in a list: [weight]"
        )
    if isinstance(obj, Sequence) and not isinstance(obj, bytes):
        return read_sequence(obj)
    raise SNEError(f"expected {_EXPECTED}, got {describe(obj)}")


def _read_path(path: Path, *, strict: bool) -> NetworkWeights:
    if not path.exists():
        raise SNEError(f"expected a path to an existing file, got {str(path)!r} (no such file)")
    if path.is_dir():
        return read_pretrained_folder(path, strict=strict)
    if not path.is_file():
        raise SNEError(f"expected a path to a file or a folder, got {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return read_safetensors(path, strict=strict)
    if suffix == ".onnx":
        return read_onnx(path, strict=strict)
    if suffix in _TORCH_SUFFIXES:
        return read_torch_file(path, strict=strict)
    if suffix == ".npz":
        return _read_npz(path, strict=strict)
    raise SNEError(
        f"{path}: unknown file extension {path.suffix!r}; expected one of "
        f"{', '.join((*_TORCH_SUFFIXES, '.npz', '.onnx', '.safetensors'))}, or a "
        "save_pretrained folder"
    )


def _read_npz(path: Path, *, strict: bool) -> NetworkWeights:
    check_npz_headers(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:
        raise SNEError(
            f"{path}: expected an .npz archive of arrays, but it could not be read: {exc}"
        ) from None
    return read_state_dict(arrays, strict=strict, source=str(path))


def read_many(X: object, *, strict: bool = True) -> list[NetworkWeights]:
    """Read each item of ``X`` as one network (for estimators).

    ``X`` must be a list or tuple; each item is one network in any form
    :func:`read_weights` accepts. A list of lists of floats is therefore *not* a matrix:
    each inner list is one network. Errors name the item: ``"X[3]: ..."``.

    >>> import torch
    >>> nets = read_many([[torch.ones(3, 2)], [torch.ones(5, 4), torch.zeros(5)]])
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
    return [_read_item(i, item, strict) for i, item in enumerate(X)]


def _read_item(index: int, item: object, strict: bool) -> NetworkWeights:
    try:
        return read_weights(item, strict=strict)
    except SNEError as exc:
        raise SNEError(f"X[{index}]: {exc}") from None
