"""The pickle-free file format of a fitted :class:`~sne_plugin.SNERegressor`.

One file, an uncompressed ``.npz`` archive (a zip of ``.npy`` arrays) read back with
``np.load(..., allow_pickle=False)``, so loading never runs code from the file:

* ``module.<name>``: the fitted network's state dict;
* ``optimizer.<param>.<name>``: the optimizer's per-parameter state (warm starts continue);
* ``rng.keys``, ``params.random_state.keys``: random-generator states;
* ``__sne_config__``: UTF-8 JSON, holding the format name and version, the sne-plugin version,
  ``get_params()`` and every fitted attribute that is not a tensor (:data:`FITTED`).

Every fitted attribute is declared once in :data:`FITTED` with a codec that writes and checks
it; a fitted attribute (a name ending in ``_``) that is not declared there makes ``save``
fail, so none is ever dropped silently. A file from another sne-plugin version, one with a
missing or mistyped key, and a pickle or joblib file are refused with an ``SNEError`` naming
the file and the key (pickles are recognised by their first bytes and never unpickled).

>>> FITTED[0].name, FITTED[0].kind
('loss_', 'str')
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sne_plugin._side import SideScaler
from sne_plugin._trees import TreeEnsemble
from sne_plugin.errors import SNEError
from sne_plugin.readers._limits import check_npz_headers

if TYPE_CHECKING:
    from sne_plugin.regressor import SNERegressor

__all__ = ["FITTED", "FORMAT", "FORMAT_VERSION", "Fitted", "load_regressor", "save_regressor"]

FORMAT = "sne-plugin/SNERegressor"
FORMAT_VERSION = 1
_CONFIG = "__sne_config__"
_Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Fitted:
    """One fitted attribute of the regressor, how it is stored, and whether it may be absent."""

    name: str
    kind: str  # a key of _CODECS
    optional: bool = False


#: Every fitted non-tensor attribute the format stores (``module_`` and ``optimizer_`` are
#: the tensors). To add one: one line here; a new kind also needs a codec in ``_CODECS``.
FITTED: tuple[Fitted, ...] = (
    Fitted("loss_", "str"),
    Fitted("weight_scale_", "float"),
    Fitted("y_mean_", "float"),
    Fitted("y_std_", "float"),
    Fitted("side_", "side"),
    Fitted("stats_", "side"),
    Fitted("device_", "device"),
    Fitted("n_epochs_", "int"),
    Fitted("history_", "history"),
    Fitted("best_val_tau_", "float", optional=True),
    Fitted("trees_", "trees", optional=True),
    Fitted("trees_weight_", "float", optional=True),
    Fitted("tree_inputs_", "str", optional=True),
    Fitted("_rng", "rng"),
)
_TENSORS = ("module_", "optimizer_")


class _Bad(Exception):
    """A value in the file that is not what the format expects (caught and named by key)."""


# ---------------------------------------------------------------------- codecs
def _check(ok: bool, expected: str, value: object) -> None:
    if not ok:
        raise _Bad(f"expected {expected}, got {_short(value)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _enc_float(value: Any, arrays: _Arrays, key: str) -> Any:
    return float(value)


def _dec_float(value: Any, arrays: _Arrays, key: str) -> float:
    _check(_is_number(value), "a number", value)
    return float(value)


def _enc_int(value: Any, arrays: _Arrays, key: str) -> Any:
    return int(value)


def _dec_int(value: Any, arrays: _Arrays, key: str) -> int:
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= 0, "an int", value)
    return int(value)


def _enc_str(value: Any, arrays: _Arrays, key: str) -> Any:
    return str(value)


def _dec_str(value: Any, arrays: _Arrays, key: str) -> str:
    _check(isinstance(value, str), "a string", value)
    return str(value)


def _enc_device(value: Any, arrays: _Arrays, key: str) -> Any:
    return str(value)


def _dec_device(value: Any, arrays: _Arrays, key: str) -> str:
    _check(isinstance(value, str), "a device name", value)
    try:
        torch.device(value)
    except (RuntimeError, TypeError):
        raise _Bad(
            f"expected a device name such as 'cpu' or 'cuda:0', got {_short(value)}"
        ) from None
    return str(value)


def _number(value: Any) -> int | float:
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _enc_history(value: Any, arrays: _Arrays, key: str) -> Any:
    return [{str(k): _number(v) for k, v in row.items()} for row in value]


def _dec_history(value: Any, arrays: _Arrays, key: str) -> list[dict[str, float]]:
    _check(isinstance(value, list), "a list of epochs", value)
    rows = []
    for row in value:
        ok = isinstance(row, dict) and all(_is_number(v) for v in row.values())
        _check(ok, "a list of {name: number} rows", row)
        rows.append({str(k): _number(v) for k, v in row.items()})
    return rows


def _enc_side(value: SideScaler | None, arrays: _Arrays, key: str) -> Any:
    if value is None:
        return None
    names = None if value.names is None else list(value.names)
    return {"mean": value.mean.tolist(), "scale": value.scale.tolist(), "names": names}


def _dec_side(value: Any, arrays: _Arrays, key: str) -> SideScaler | None:
    if value is None:
        return None
    _check(isinstance(value, dict), "null or {mean, scale, names}", value)
    mean, scale, names = (value.get(k) for k in ("mean", "scale", "names"))
    for part in (mean, scale):
        ok = isinstance(part, list) and all(_is_number(v) and math.isfinite(v) for v in part)
        _check(ok, "mean and scale as lists of finite numbers", value)
    _check(len(mean) == len(scale) > 0, "mean and scale of one positive length", value)
    _check(all(v > 0 for v in scale), "positive scales", value)
    ok = names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names))
    _check(
        ok and (names is None or len(names) == len(mean)), "names: null or one per column", value
    )
    return SideScaler(
        np.asarray(mean, dtype=np.float64),
        np.asarray(scale, dtype=np.float64),
        None if names is None else tuple(names),
    )


def _enc_trees(value: TreeEnsemble | None, arrays: _Arrays, key: str) -> Any:
    if value is None:
        return None
    for name, array in value.to_arrays().items():
        arrays[f"{key}.{name}"] = array
    return {"arrays": sorted(value.to_arrays())}


def _dec_trees(value: Any, arrays: _Arrays, key: str) -> TreeEnsemble | None:
    if value is None:
        return None
    _check(isinstance(value, dict) and isinstance(value.get("arrays"), list), "{arrays}", value)
    names = [n for n in value["arrays"] if isinstance(n, str)]
    missing = [n for n in names if f"{key}.{n}" not in arrays]
    _check(not missing, "the tree arrays it names", missing)
    try:
        return TreeEnsemble.from_arrays({n: arrays[f"{key}.{n}"] for n in names})
    except SNEError as exc:
        raise _Bad(str(exc)) from None


def _enc_rng(value: np.random.RandomState, arrays: _Arrays, key: str) -> Any:
    name, keys, pos, has_gauss, cached = value.get_state()
    arrays[f"{key}.keys"] = np.asarray(keys, dtype=np.uint32)
    return {"bit_generator": name, "pos": int(pos), "has_gauss": int(has_gauss), "cached": cached}


def _dec_rng(value: Any, arrays: _Arrays, key: str) -> np.random.RandomState:
    _check(isinstance(value, dict), "a random state {bit_generator, pos, has_gauss, cached}", value)
    keys = arrays.get(f"{key}.keys")
    if keys is None:
        raise _Bad(f"expected the array {key}.keys beside it, found none")
    _check(keys.dtype == np.uint32 and keys.shape == (624,), "624 uint32 keys", keys.shape)
    try:
        rng = np.random.RandomState()
        state = (value["bit_generator"], keys, value["pos"], value["has_gauss"], value["cached"])
        rng.set_state(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise _Bad(f"expected a MT19937 random state, got {_short(value)} ({exc})") from None
    return rng


_Codec = tuple[Callable[[Any, _Arrays, str], Any], Callable[[Any, _Arrays, str], Any]]
_CODECS: dict[str, _Codec] = {
    "float": (_enc_float, _dec_float),
    "int": (_enc_int, _dec_int),
    "str": (_enc_str, _dec_str),
    "device": (_enc_device, _dec_device),
    "history": (_enc_history, _dec_history),
    "side": (_enc_side, _dec_side),
    "rng": (_enc_rng, _dec_rng),
    "trees": (_enc_trees, _dec_trees),
}


# ---------------------------------------------------------------------- parameters
def _enc_params(params: dict[str, Any], arrays: _Arrays) -> dict[str, Any]:
    out = dict(params)
    state = params.get("random_state")
    if isinstance(state, np.random.RandomState):
        out["random_state"] = {"RandomState": _enc_rng(state, arrays, "params.random_state")}
    for name, value in out.items():
        if isinstance(value, np.generic):  # np.int64(5) and the like: plain numbers
            value = out[name] = value.item()
        if not (value is None or isinstance(value, (bool, int, float, str, dict))):
            raise SNEError(
                f"cannot save parameter {name}={value!r}: expected None, a bool, a number "
                "or a string"
            )
    return out


def _dec_params(value: Any, arrays: _Arrays) -> dict[str, Any]:
    _check(isinstance(value, dict), "a mapping of parameters", value)
    params = dict(value)
    state = params.get("random_state")
    if isinstance(state, dict):
        params["random_state"] = _dec_rng(state.get("RandomState"), arrays, "params.random_state")
    return params


# ---------------------------------------------------------------------- save
def undeclared(estimator: SNERegressor) -> list[str]:
    """Fitted attributes of ``estimator`` that :data:`FITTED` does not declare."""
    declared = {f.name for f in FITTED} | set(_TENSORS)
    return sorted(
        name
        for name in vars(estimator)
        if name.endswith("_") and not name.startswith("__") and name not in declared
    )


def save_regressor(estimator: SNERegressor, path: str | os.PathLike[str]) -> None:
    """Write ``estimator`` to ``path`` in this format (atomically: a temporary file, renamed)."""
    missing = undeclared(estimator)
    if missing:
        raise SNEError(
            f"cannot save: fitted attribute(s) {missing} are not declared in "
            "sne_plugin._persist.FITTED; add them there so they are saved and checked"
        )
    arrays: _Arrays = {}
    config = _config(estimator, arrays)
    arrays.update(_module_arrays(estimator))
    arrays[_CONFIG] = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    _write_atomically(os.fspath(path), arrays)


def _config(estimator: SNERegressor, arrays: _Arrays) -> dict[str, Any]:
    from sne_plugin import __version__

    fitted = {}
    for item in FITTED:
        if not hasattr(estimator, item.name):
            if item.optional:
                continue
            raise SNEError(f"cannot save: the regressor lacks its fitted attribute {item.name}")
        encode = _CODECS[item.kind][0]
        fitted[item.name] = encode(getattr(estimator, item.name), arrays, item.name)
    optimizer = estimator.optimizer_.state_dict()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sne_plugin_version": __version__,
        "params": _enc_params(estimator.get_params(deep=False), arrays),
        "fitted": fitted,
        "optimizer": {
            "param_groups": optimizer["param_groups"],
            "state": {str(k): sorted(v) for k, v in optimizer["state"].items()},
            "scalars": _optimizer_scalars(optimizer["state"]),
        },
    }


def _optimizer_scalars(state: dict[Any, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Non-tensor entries of the optimizer's per-parameter state (kept as JSON numbers)."""
    return {
        str(k): {n: v for n, v in entry.items() if not torch.is_tensor(v)}
        for k, entry in state.items()
    }


def _module_arrays(estimator: SNERegressor) -> _Arrays:
    arrays = {
        f"module.{k}": v.detach().cpu().numpy() for k, v in estimator.module_.state_dict().items()
    }
    for k, entry in estimator.optimizer_.state_dict()["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                arrays[f"optimizer.{k}.{name}"] = value.detach().cpu().numpy()
    return arrays


def _write_atomically(path: str, arrays: _Arrays) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".sne-save-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------------- load
def load_regressor(cls: type[SNERegressor], path: str | os.PathLike[str]) -> SNERegressor:
    """Read a regressor written by :func:`save_regressor`; never unpickles."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise SNEError(f"expected a saved SNERegressor file, but {where!r} does not exist")
    _refuse_pickle(where)
    arrays = _read_arrays(where)
    config = _read_config(arrays, where)
    try:
        return _build(cls, config, arrays, where)
    except _Bad as exc:
        raise SNEError(f"{where!r}: {exc}") from None


def _refuse_pickle(path: str) -> None:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):
        return
    if head[:1] == b"\x80" or head[:2] in (b"\x78\x01", b"\x78\x9c", b"\x78\xda", b"\x1f\x8b"):
        what = "a pickle or joblib file (SNERegressor files before sne-plugin's npz format)"
    elif head[:3] in (b"BZh", b"\xfd7z", b"\x5d\x00\x00"):
        what = "a compressed joblib file"
    else:
        what = "not a zip/npz archive"
    raise SNEError(
        f"{path!r} is {what}; SNERegressor.load reads only its own pickle-free .npz format, "
        "because unpickling a file can run any code it holds. If you trust where the file "
        "came from, read it with joblib.load (trusted sources only) and save it again with "
        ".save(path)"
    )


def _read_arrays(path: str) -> _Arrays:
    check_npz_headers(Path(path))  # no member may decompress past the readers' caps
    try:
        with np.load(path, allow_pickle=False) as archive:
            if _CONFIG not in archive.files:
                raise SNEError(
                    f"{path!r}: expected a saved SNERegressor, but the archive has no key "
                    f"{_CONFIG!r} (is it a network's weights? read those with read_weights)"
                )
            return {name: archive[name] for name in archive.files}
    except SNEError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise SNEError(f"{path!r} is not a readable saved SNERegressor ({exc})") from None


def _read_config(arrays: _Arrays, path: str) -> dict[str, Any]:
    raw = arrays[_CONFIG]
    try:
        config = json.loads(raw.astype(np.uint8).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SNEError(f"{path!r}: key {_CONFIG!r} is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(config, dict):
        raise SNEError(f"{path!r}: key {_CONFIG!r}: expected a JSON object")
    _expect(config, "format", FORMAT, path)
    _expect(config, "format_version", FORMAT_VERSION, path)
    _check_version(config, path)
    return config


def _expect(config: dict[str, Any], key: str, value: object, path: str) -> None:
    if key not in config:
        raise SNEError(f"{path!r}: the config lacks key {key!r}")
    if config[key] != value:
        raise SNEError(f"{path!r}: key {key!r}: expected {value!r}, got {_short(config[key])}")


def _check_version(config: dict[str, Any], path: str) -> None:
    from sne_plugin import __version__

    saved = config.get("sne_plugin_version")
    if not isinstance(saved, str):
        raise SNEError(f"{path!r}: the config lacks key 'sne_plugin_version' (a string)")
    if saved.split(".")[:2] != __version__.split(".")[:2]:
        raise SNEError(
            f"{path!r}: key 'sne_plugin_version': this SNERegressor was saved by sne-plugin "
            f"{saved}, which is not compatible with the installed {__version__}; refit it, "
            f"or install sne-plugin=={saved}"
        )


def _section(config: dict[str, Any], key: str) -> Any:
    if key not in config:
        raise _Bad(f"the config lacks key {key!r}")
    return config[key]


def _build(
    cls: type[SNERegressor], config: dict[str, Any], arrays: _Arrays, path: str
) -> SNERegressor:
    params = _keyed("params", lambda: _dec_params(_section(config, "params"), arrays))
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise _Bad(f"key 'params': {exc}") from None
    fitted = _section(config, "fitted")
    _check(isinstance(fitted, dict), "key 'fitted' to be a JSON object", fitted)
    for item in FITTED:
        key = f"fitted.{item.name}"
        if item.name not in fitted:
            if item.optional:
                continue
            raise _Bad(f"the config lacks key {key!r}")
        setattr(estimator, item.name, _keyed(key, _decoder(item, fitted[item.name], arrays)))
    estimator._initialize_device(str(estimator.device_))
    _restore_module(estimator, arrays)
    _restore_optimizer(estimator, _section(config, "optimizer"), arrays)
    return estimator


def _decoder(item: Fitted, value: Any, arrays: _Arrays) -> Callable[[], Any]:
    decode = _CODECS[item.kind][1]
    return lambda: decode(value, arrays, item.name)


def _keyed(key: str, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except _Bad as exc:
        raise _Bad(f"key {key!r}: {exc}") from None


_TYPE_TABLE = "encoder.type_embedding.weight"


def _grown_type_table(saved: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """A type-embedding table saved before layer kinds were added, completed with the fresh
    module's rows for the new kinds (kinds are only ever appended, so the saved rows keep
    their meaning); any other shape is returned as it is, for the shape check to refuse."""
    rows = saved.shape[0] if saved.ndim == 2 else 0
    if saved.ndim != 2 or saved.shape[1:] != fresh.shape[1:] or not 0 < rows < len(fresh):
        return saved
    return np.concatenate([saved, fresh[rows:].astype(saved.dtype)])


def _restore_module(estimator: SNERegressor, arrays: _Arrays) -> None:
    """``module_`` from the ``module.*`` arrays, each key and shape checked first."""
    state = {k[len("module.") :]: v for k, v in arrays.items() if k.startswith("module.")}
    rng, estimator._rng = estimator._rng, np.random.RandomState(0)  # keep the saved state
    estimator._initialize_module()  # a fresh module of the saved parameters: the reference
    estimator._rng = rng
    expected = estimator.module_.state_dict()
    for name, ref in expected.items():
        if name not in state:
            raise _Bad(f"the archive lacks key 'module.{name}'")
        if name == _TYPE_TABLE:
            state[name] = _grown_type_table(state[name], ref.cpu().numpy())
        got = state[name]
        if tuple(got.shape) != tuple(ref.shape) or got.dtype.kind not in "fiu":
            raise _Bad(
                f"key 'module.{name}': expected shape {tuple(ref.shape)} of numbers, got "
                f"shape {tuple(got.shape)} of {got.dtype}"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise _Bad(f"unexpected key 'module.{extra[0]}' (not part of this regressor's module)")
    tensors = {k: torch.from_numpy(np.array(state[k])).to(v.dtype) for k, v in expected.items()}
    estimator._initialize_module(tensors)


def _restore_optimizer(estimator: SNERegressor, section: Any, arrays: _Arrays) -> None:
    _check(isinstance(section, dict), "key 'optimizer' to be a JSON object", section)
    groups, names, scalars = (section.get(k) for k in ("param_groups", "state", "scalars"))
    _check(isinstance(groups, list), "key 'optimizer.param_groups' to be a list", groups)
    _check(isinstance(names, dict), "key 'optimizer.state' to be an object", names)
    _check(isinstance(scalars, dict), "key 'optimizer.scalars' to be an object", scalars)
    params = list(estimator.module_.parameters())
    state: dict[int, dict[str, Any]] = {}
    for k, entries in names.items():
        index = int(k) if k.isdecimal() and k.isascii() else -1
        _check(0 <= index < len(params), f"optimizer state keys 0 to {len(params) - 1}", k)
        entry = dict(scalars.get(k, {}))
        grow = params[index] is estimator.module_.encoder.type_embedding.weight
        for name in entries if isinstance(entries, list) else []:
            key = f"optimizer.{k}.{name}"
            if grow and key in arrays:  # moments of rows added since: zero, as never trained
                zeros = np.zeros(tuple(params[index].shape), arrays[key].dtype)
                arrays = {**arrays, key: _grown_type_table(arrays[key], zeros)}
            entry[name] = _optimizer_tensor(arrays, key, params[index])
        state[index] = entry
    try:
        estimator._initialize_optimizer({"state": state, "param_groups": groups})
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise _Bad(f"key 'optimizer': does not fit this regressor's module ({exc})") from None


def _optimizer_tensor(arrays: _Arrays, key: str, param: torch.Tensor) -> torch.Tensor:
    if key not in arrays:
        raise _Bad(f"the archive lacks key {key!r}")
    value = arrays[key]
    if value.dtype.kind not in "fiu" or (value.ndim and tuple(value.shape) != tuple(param.shape)):
        raise _Bad(
            f"key {key!r}: expected a scalar or shape {tuple(param.shape)} of numbers, got "
            f"shape {tuple(value.shape)} of {value.dtype}"
        )
    return torch.from_numpy(np.array(value))
