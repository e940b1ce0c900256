"""Read ``.safetensors`` files and Hugging Face ``save_pretrained`` folders.

A ``.safetensors`` file is read as a state dict (:mod:`.state_dict`). Its JSON header is
checked first: every tensor's parameter count against the cap in force
(:func:`sne_plugin.weights.max_parameters`), and every declared byte range against the
file's size, so a file cannot make the reader allocate more than it holds. The
``safetensors`` package (``pip install sne-plugin[hf]``) is imported only here.

A folder is read as ``save_pretrained`` writes one: ``model.safetensors``, or the shards
a ``model.safetensors.index.json`` lists, or else ``pytorch_model.bin`` (torch checkpoint,
``weights_only=True``); a ``config.json`` beside them is recorded in ``meta["config"]``
(the ``model_type`` and ``architectures`` entries only), not needed.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import torch

from sne_plugin._imports import optional_import
from sne_plugin.errors import SNEError
from sne_plugin.readers.state_dict import read_state_dict, read_torch_file
from sne_plugin.weights import NetworkWeights, max_parameters

__all__ = ["read_pretrained_folder", "read_safetensors"]

_HEADER_CAP = 100_000_000  # bytes of JSON header; the format's own reference limit
_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip


def read_safetensors(path: Path, *, strict: bool = True) -> NetworkWeights:
    """The layers of one ``.safetensors`` file, read as a state dict.

    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> path = Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> save_file({"fc.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2)}, path)
    >>> read_safetensors(path).spec.layers[0].weight_shape
    (2, 3)
    """
    return read_state_dict(_load(path), strict=strict, source=str(path))


def read_pretrained_folder(folder: Path, *, strict: bool = True) -> NetworkWeights:
    """The layers of a ``save_pretrained`` folder (see the module docstring)."""
    config = _config(folder)
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if single.is_file():
        net = read_safetensors(single, strict=strict)
    elif index.is_file():
        net = read_state_dict(_load_shards(index), strict=strict, source=str(index))
    elif (folder / "pytorch_model.bin").is_file():
        net = read_torch_file(folder / "pytorch_model.bin", strict=strict)
    else:
        found = sorted(p.name for p in folder.iterdir())[:10]
        raise SNEError(
            f"{folder}: expected a save_pretrained folder holding model.safetensors, "
            f"model.safetensors.index.json or pytorch_model.bin, got {found or 'an empty folder'}"
        )
    if config:
        net.meta["config"] = config
    return net


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SNEError(
            f"{path}: expected a JSON model config, but it could not be read: {exc}"
        ) from None
    if not isinstance(loaded, dict):
        return {}
    return {key: loaded[key] for key in ("model_type", "architectures") if key in loaded}


def _load_shards(index: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = list(dict.fromkeys(str(name) for name in weight_map.values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SNEError(
            f"{index}: expected a safetensors index with a 'weight_map', but it could not be "
            f"read: {type(exc).__name__}: {exc}"
        ) from None
    state: dict[str, torch.Tensor] = {}
    for name in shards:
        shard = index.parent / name
        if shard.parent != index.parent or not shard.is_file():
            raise SNEError(f"{index}: expected the shard {name!r} beside it, found none")
        state.update(_load(shard))
    return {key: state[key] for key in weight_map if key in state}


def _load(path: Path) -> dict[str, torch.Tensor]:
    safetensors_torch = optional_import("safetensors.torch", extra="hf")
    _check_header(path)
    try:
        return dict(safetensors_torch.load_file(str(path), device="cpu"))
    except Exception as exc:
        raise SNEError(
            f"{path}: expected a safetensors file, but loading failed: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None


def _check_header(path: Path) -> None:
    """Refuse, before loading, a header that is malformed, declares tensors over the
    parameter cap, or byte ranges past the end of the file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise SNEError(f"{path}: expected a safetensors file, got {size} bytes (no header)")
        (length,) = struct.unpack("<Q", head)
        if length > min(_HEADER_CAP, size - 8):
            raise SNEError(
                f"{path}: expected a safetensors header of at most {min(_HEADER_CAP, size - 8):,} "
                f"bytes, got a declared length of {length:,}"
            )
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SNEError(f"{path}: expected a JSON safetensors header: {exc}") from None
    if not isinstance(header, dict):
        raise SNEError(f"{path}: expected a JSON object as safetensors header")
    total = 0
    for name, info in header.items():
        if name != "__metadata__":
            total += _check_entry(path, name, info, size - 8 - length)
    cap = max_parameters()
    if total > cap:
        raise SNEError(
            f"{path}: the network holds {total:,} parameters, over the cap max_parameters="
            f"{cap:,}; if the file is trusted, raise it: read_weights(..., max_parameters=N)"
        )


def _check_entry(path: Path, name: str, info: object, data_bytes: int) -> int:
    where = f"{path}, tensor {name!r}"
    try:
        shape = [int(n) for n in info["shape"]]  # type: ignore[index]
        start, end = (int(n) for n in info["data_offsets"])  # type: ignore[index]
        dtype = str(info["dtype"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        raise SNEError(f"{where}: expected dtype, shape and data_offsets, got {info!r}") from None
    count = math.prod(shape)
    if count > max_parameters():
        raise SNEError(
            f"{where}: the tensor of shape {tuple(shape)} holds {count:,} parameters, over the "
            f"cap max_parameters={max_parameters():,}"
        )
    width = _DTYPE_BYTES.get(dtype)
    if width is not None and not (0 <= start <= end <= data_bytes and end - start == count * width):
        raise SNEError(
            f"{where}: expected {count * width:,} bytes inside the file's {data_bytes:,} bytes of "
            f"data, got data_offsets [{start}, {end}]"
        )
    return count
