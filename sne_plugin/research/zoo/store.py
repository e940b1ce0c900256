"""The on-disk zoo format (no pickle) and the :class:`Zoo` that reads it.

A zoo is a folder::

    zoo.json        manifest: {"format": "sne-zoo", "version": 1, arch, dataset, seed,
                    epochs, architecture spec (parameter names and shapes), hparam space}
    models.jsonl    one JSON object per finished model (id, arch, dataset, hyperparameters,
                    seed, final_epoch, saved_epochs, test_acc, train_acc, acc_by_epoch,
                    train_acc_by_epoch, file), appended in completion order
    weights/000042.npz   compressed numpy arrays keyed ``epoch{e}/{state-dict key}``

Writes are crash-safe: a model's ``.npz`` is written to a ``.tmp`` name, fsynced and moved
into place with ``os.replace`` (the folder fsynced too); only then is its line appended to
``models.jsonl`` (flush + fsync). On reopening, ids already recorded are skipped, orphan
``.tmp`` files removed and a truncated last line dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sne_plugin.errors import SNEError
from sne_plugin.research.zoo.architectures import ZooNet, build, to_network_weights
from sne_plugin.weights import NetworkWeights

__all__ = ["FORMAT", "VERSION", "BaseZoo", "Zoo", "ZooWriter", "build_module", "load_zoo"]

FORMAT, VERSION = "sne-zoo", 1
_LOG_KEYS = {"lr", "l2", "learning_rate", "l2reg", "init_std", "init_scale"}


class BaseZoo:
    """What every zoo offers: ``records``, ``weights(epoch)``, ``targets``, ``hparams_matrix``."""

    records: list[dict[str, Any]]
    hparam_keys: tuple[str, ...] = ()
    hparam_space: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.records)

    def weights(self, epoch: int | str = "final") -> list[NetworkWeights]:
        raise NotImplementedError

    def targets(self, key: str = "test_acc") -> np.ndarray:
        """One value per record, as float array (e.g. ``"test_acc"``, ``"train_acc"``)."""
        missing = [r.get("id") for r in self.records if key not in r]
        if missing:
            raise SNEError(
                f"records {missing[:5]} have no {key!r}; keys: {sorted(self.records[0])}"
            )
        return np.array([float(r[key]) for r in self.records], dtype=np.float64)

    def hparams_matrix(self) -> np.ndarray:
        """``(n, d)`` floats: numeric hyperparameters (log10 for rates) and one-hot categories."""
        return np.array([self._hparam_row(r) for r in self.records], dtype=np.float64)

    def hparam_names(self) -> list[str]:
        """The column names of :meth:`hparams_matrix`."""
        names = []
        for key in self.hparam_keys:
            if key in self.hparam_space:
                names += [f"{key}={c}" for c in self.hparam_space[key]]
            else:
                names.append(f"log10({key})" if key in _LOG_KEYS else key)
        return names

    def _hparam_row(self, record: dict[str, Any]) -> list[float]:
        row: list[float] = []
        for key in self.hparam_keys:
            value = record.get(key)
            if key in self.hparam_space:
                row += [float(value == c) for c in self.hparam_space[key]]
            elif key in _LOG_KEYS:
                row.append(float(np.log10(max(float(value), 1e-12))))  # type: ignore[arg-type]
            else:
                row.append(float(value))  # type: ignore[arg-type]
        return row


class Zoo(BaseZoo):
    """A zoo built by :func:`sne_plugin.research.zoo.build_zoo`, read from its folder.

    ``records`` are sorted by id; each carries ``weights_file`` (absolute) for
    :func:`build_module`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.hparam_keys = tuple(self.manifest["hparam_keys"])
        self.hparam_space = dict(self.manifest["hparam_space"])
        self.records = sorted(read_records(self.path).values(), key=lambda r: r["id"])
        for r in self.records:
            r["weights_file"] = str((self.path / r["file"]).resolve())

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Zoo({str(self.path)!r}, arch={m['arch']!r}, dataset={m['dataset']!r}, n={len(self)})"
        )

    def weights(self, epoch: int | str = "final") -> list[NetworkWeights]:
        """Every model's weights at ``epoch`` (an int, or ``"final"``) in record order."""
        template = build(self.manifest["arch"], input_shape=tuple(self.manifest["input_shape"]))
        return [_as_weights(template, r, epoch) for r in self.records]


def _epoch_of(record: dict[str, Any], epoch: int | str) -> int:
    if epoch == "final":
        return int(record["final_epoch"])
    if not isinstance(epoch, int) or epoch not in record["saved_epochs"]:
        raise SNEError(
            f"model {record['id']}: no weights saved at epoch {epoch!r}; saved: "
            f"{record['saved_epochs']} or 'final'"
        )
    return epoch


def load_state(record: dict[str, Any], epoch: int | str = "final") -> dict[str, torch.Tensor]:
    """The state dict of a record's model at ``epoch``, read from its ``.npz``."""
    e = _epoch_of(record, epoch)
    prefix = f"epoch{e}/"
    try:
        with np.load(record["weights_file"], allow_pickle=False) as npz:
            return {
                k[len(prefix) :]: torch.from_numpy(npz[k])
                for k in npz.files
                if k.startswith(prefix)
            }
    except (OSError, ValueError) as exc:
        raise SNEError(
            f"cannot read weights of model {record['id']} from {record['weights_file']}: {exc}"
        ) from None


def _as_weights(template: ZooNet, record: dict[str, Any], epoch: int | str) -> NetworkWeights:
    template.load_state_dict(load_state(record, epoch))
    net = to_network_weights(template, source=f"{record['weights_file']}@{epoch}")
    net.meta.update(id=record["id"], epoch=_epoch_of(record, epoch))
    return net


def build_module(record: dict[str, Any], epoch: int | str = "final") -> ZooNet:
    """The torch module of a zoo record with its weights at ``epoch`` loaded (eval mode)."""
    if "weights_file" not in record:
        raise SNEError("build_module needs a record from Zoo.records (it has no 'weights_file')")
    net = build(
        record["arch"],
        record["activation"],
        input_shape=tuple(record["input_shape"]),
        dropout=record["dropout"],
    )
    net.load_state_dict(load_state(record, epoch))
    return net.eval()


def load_zoo(path: str | os.PathLike[str]) -> Zoo:
    """Open the zoo folder ``path`` (see the module doc for its format)."""
    return Zoo(path)


# --- reading and writing ----------------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, Any]:
    file = path / "zoo.json"
    if not file.is_file():
        raise SNEError(f"{path} is not a zoo folder: {file.name} is missing")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise SNEError(f"{file}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise SNEError(
            f"{file}: expected format {FORMAT!r} version {VERSION}, got "
            f"{manifest.get('format')!r} version {manifest.get('version')!r}"
        )
    return dict(manifest)


def read_records(path: Path) -> dict[int, dict[str, Any]]:
    """Records by id; a truncated or garbled last line (a crash mid-append) is ignored."""
    file = path / "models.jsonl"
    if not file.exists():
        return {}
    records: dict[int, dict[str, Any]] = {}
    lines = file.read_bytes().split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i >= len(lines) - 2:
                continue  # the last line, cut short by a crash
            raise SNEError(f"{file}, line {i + 1}: not valid JSON") from None
        rec["acc_by_epoch"] = {int(k): v for k, v in rec["acc_by_epoch"].items()}
        rec["train_acc_by_epoch"] = {int(k): v for k, v in rec["train_acc_by_epoch"].items()}
        records[int(rec["id"])] = rec
    return records


def _fsync_write(path: Path, write: Any) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ZooWriter:
    """Appends finished models to a zoo folder, crash-safely (see the module doc)."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        (path / "weights").mkdir(parents=True, exist_ok=True)
        self._check_or_write_manifest(manifest)
        for tmp in (path / "weights").glob("*.tmp"):
            tmp.unlink()
        self.done = set(read_records(path))
        self._drop_partial_line()

    def _check_or_write_manifest(self, manifest: dict[str, Any]) -> None:
        file = self.path / "zoo.json"
        if file.exists():
            old = read_manifest(self.path)
            diff = [k for k in manifest if k != "n_models" and old.get(k) != manifest[k]]
            if diff:
                raise SNEError(
                    f"{self.path} holds a zoo built with other settings "
                    f"({', '.join(diff)}: "
                    f"{[old.get(k) for k in diff]} != {[manifest[k] for k in diff]}); "
                    "use another path"
                )
        text = json.dumps(manifest, indent=1).encode()
        _fsync_write(file.with_suffix(".json.tmp"), lambda f: f.write(text))
        os.replace(file.with_suffix(".json.tmp"), file)
        _fsync_dir(self.path)

    def _drop_partial_line(self) -> None:
        file = self.path / "models.jsonl"
        if file.exists():
            data = file.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(file, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)

    def write(self, record: dict[str, Any], weights: dict[int, dict[str, np.ndarray]]) -> None:
        """Write one model: its ``.npz`` (atomically), then its ``models.jsonl`` line."""
        rel = f"weights/{int(record['id']):06d}.npz"
        arrays = {f"epoch{e}/{k}": v for e, state in weights.items() for k, v in state.items()}
        tmp = self.path / (rel + ".tmp")
        _fsync_write(tmp, lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]
        os.replace(tmp, self.path / rel)
        _fsync_dir(self.path / "weights")  # the file is in place before its line is written
        line = json.dumps({**record, "file": rel}) + "\n"
        with open(self.path / "models.jsonl", "ab") as f:
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
        self.done.add(int(record["id"]))


def architecture_spec(arch: str, input_shape: Sequence[int]) -> dict[str, Any]:
    """Parameter names and shapes of ``arch`` (for the manifest)."""
    net = build(arch, input_shape=tuple(input_shape))  # type: ignore[arg-type]
    return {
        "name": arch,
        "input_shape": list(input_shape),
        "state": {k: list(v.shape) for k, v in net.state_dict().items()},
        "num_params": sum(p.numel() for p in net.parameters()),
    }


def jsonable(values: Iterable[Any]) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values]
