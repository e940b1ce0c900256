"""Read ``.safetensors`` files and Hugging Face ``save_pretrained`` folders.

A ``.safetensors`` file is read as a state dict (:mod:`.state_dict`). Its JSON header is
checked first: every tensor's parameter count against the cap in force
(:func:`sne_plugin.weights.max_parameters`), and every declared byte range against the
file's size, so a file cannot make the reader allocate more than it holds. The format
stores tensors sorted by name, not in the module's order; they are read in the order of
their names with numbers compared as numbers (``layer.2`` before ``layer.10``), which keeps
blocks in order but not always the layers inside a block. The ``safetensors`` package
(``pip install sne-plugin[hf]``) is imported only here.

A folder is read as ``save_pretrained`` writes one. When it has a ``config.json`` naming
an architecture that the installed ``transformers`` knows (``"architectures":
["ViTModel"]``), the model is rebuilt from it and loaded with ``from_pretrained``
(local files only, no remote code): the folder then reads exactly as the module does, in
its execution order, with renamed and tied keys handled by transformers. Its size is
counted on the meta device first, against the parameter cap; a key the model lacks or one
the files lack is unreadable (strict: an error). Otherwise the weights are read as a state
dict: ``model.safetensors``, or the shards a ``model.safetensors.index.json`` lists, or
``pytorch_model.bin`` (torch checkpoint, ``weights_only=True``). ``meta["config"]`` keeps
the config's ``model_type`` and ``architectures``.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import struct
import warnings
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
    model_class = _model_class(config)
    net = (
        _read_with_transformers(folder, model_class, strict=strict)
        if model_class is not None
        else _read_files(folder, strict=strict)
    )
    if config:
        net.meta["config"] = config
    return net


def _model_class(config: dict[str, Any]) -> Any:
    """The transformers class the config names, or None (no config, no transformers, or an
    architecture it does not know)."""
    names = config.get("architectures")
    if not isinstance(names, list) or not names or not isinstance(names[0], str):
        return None
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        return None
    found = getattr(transformers, names[0], None)
    base = getattr(transformers, "PreTrainedModel", None)
    return found if isinstance(found, type) and base and issubclass(found, base) else None


def _read_with_transformers(folder: Path, model_class: Any, *, strict: bool) -> NetworkWeights:
    from sne_plugin.readers.torch_module import read_module

    _check_folder_size(folder, model_class)
    logging = importlib.import_module("transformers.utils.logging")
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        model, info = model_class.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True
        )
    except Exception as exc:
        raise SNEError(
            f"{folder}: expected a save_pretrained folder that {model_class.__name__} loads, "
            f"but loading failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    finally:
        if bars:
            logging.enable_progress_bar()
    _report_keys(folder, info, strict=strict)
    net = read_module(model, strict=strict)
    return NetworkWeights(net.layers, str(folder), net.is_chain, dict(net.meta))


def _check_folder_size(folder: Path, model_class: Any) -> None:
    """Refuse a config that declares a model over the parameter cap, before building it."""
    try:
        config = model_class.config_class.from_pretrained(str(folder), local_files_only=True)
        with torch.device("meta"):
            count = sum(p.numel() for p in model_class(config).parameters())
    except Exception as exc:
        raise SNEError(
            f"{folder}/config.json: expected a config that {model_class.__name__} builds, but "
            f"building it failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    cap = max_parameters()
    if count > cap:
        raise SNEError(
            f"{folder}: the config declares {count:,} parameters, over the cap max_parameters="
            f"{cap:,}; if the folder is trusted, raise it: read_weights(..., max_parameters=N)"
        )
    for path in sorted(folder.glob("*.safetensors")):
        _check_header(path)


def _report_keys(folder: Path, info: dict[str, Any], *, strict: bool) -> None:
    """Raise (strict) or warn when the files and the model do not hold the same weights:
    transformers would leave missing weights at their random initial values."""
    problems = [
        f"{what} {sorted(map(str, info.get(key) or ()))[:5]}"
        for key, what in (
            ("missing_keys", "weights the files lack"),
            ("unexpected_keys", "weights the model lacks"),
            ("mismatched_keys", "weights of another shape"),
        )
        if info.get(key)
    ]
    if not problems:
        return
    message = f"{folder}: the files do not match the config's model: {'; '.join(problems)}"
    if strict:
        raise SNEError(f"{message}; pass strict=False to read what was loaded")
    warnings.warn(message, UserWarning, stacklevel=4)


def _read_files(folder: Path, *, strict: bool) -> NetworkWeights:
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
    return {key: state[key] for key in sorted(state, key=_natural)}


def _load(path: Path) -> dict[str, torch.Tensor]:
    safetensors_torch = optional_import("safetensors.torch", extra="hf")
    _check_header(path)
    try:
        loaded = safetensors_torch.load_file(str(path), device="cpu")
    except Exception as exc:
        raise SNEError(
            f"{path}: expected a safetensors file, but loading failed: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    return {key: loaded[key] for key in sorted(loaded, key=_natural)}


def _natural(key: str) -> list[tuple[int, int | str]]:
    """A sort key comparing the numbers in ``key`` as numbers: ``h.2`` before ``h.10``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", key)]


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
