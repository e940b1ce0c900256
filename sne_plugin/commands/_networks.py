"""Networks and targets named on the command line.

A network argument is a model file (``.pt``/``.pth``/``.ckpt``/``.bin``, ``.onnx``, ``.npz``),
a zoo folder (``zoo.json`` inside: every model of the zoo, targets included), or a plain
folder (its model files, sorted by name). An ``.npz`` written by a zoo holds several saved
epochs of one model (keys ``epoch{e}/{name}``); one epoch of it is read, the last unless
``epoch`` names another.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sne_plugin.errors import SNEError

if TYPE_CHECKING:
    from sne_plugin.weights import NetworkWeights

__all__ = [
    "MODEL_SUFFIXES",
    "Networks",
    "read_file",
    "read_networks",
    "read_targets",
]

MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".onnx", ".npz")


@dataclass
class Networks:
    """What the arguments named: a display name per network, its weights, and the targets
    the zoo folders among them carry (``None`` when any argument was not a zoo)."""

    names: list[str] = field(default_factory=list)
    weights: list[NetworkWeights] = field(default_factory=list)
    zoo_targets: list[float] | None = field(default_factory=list)


def read_file(
    path: Path, *, strict: bool = True, epoch: int | None = None, canonical: bool = True
) -> NetworkWeights:
    """One network from a model file, in the canonical form the estimators encode unless
    ``canonical=False``; for a zoo ``.npz``, the weights of one saved epoch (``epoch``
    applies to ``.npz`` files only, so that it can also name a zoo folder's)."""
    from sne_plugin.readers import read_weights

    epoch = epoch if path.suffix.lower() == ".npz" else None
    return read_weights(path, strict=strict, epoch=epoch, canonical=canonical)


def _zoo(path: Path, epoch: int | None, key: str) -> tuple[list[str], list[Any], list[float]]:
    # The zoo format belongs to the research harness; imported only when a zoo is named.
    from sne_plugin.research.zoo.store import load_zoo

    zoo = load_zoo(path)
    if not len(zoo):
        raise SNEError(f"{path}: the zoo holds no finished models yet")
    names = [str(path / r["file"]) for r in zoo.records]
    return names, zoo.weights("final" if epoch is None else epoch), list(zoo.targets(key))


def _folder_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in MODEL_SUFFIXES)
    if not files:
        raise SNEError(
            f"{path}: expected a zoo folder (with zoo.json) or a folder of model files "
            f"({', '.join(MODEL_SUFFIXES)}), found neither"
        )
    return files


def read_networks(
    paths: Sequence[str],
    *,
    strict: bool = True,
    epoch: int | None = None,
    target_key: str = "test_acc",
    progress: bool | None = None,
) -> Networks:
    """Every network the arguments name, in order (see the module docstring)."""
    from tqdm.auto import tqdm

    out = Networks()
    files: list[Path] = []
    for arg in paths:
        path = Path(arg)
        if (path / "zoo.json").is_file():
            names, weights, targets = _zoo(path, epoch, target_key)
            out.names += names
            out.weights += weights
            if out.zoo_targets is not None:
                out.zoo_targets += targets
            continue
        out.zoo_targets = None
        files += _folder_files(path) if path.is_dir() else [path]
    # A bar for many files only; progress=None: on a terminal only (tqdm's disable=None).
    disable = True if len(files) < 20 else (None if progress is None else not progress)
    for path in tqdm(files, desc="reading", unit="net", disable=disable):
        out.names.append(str(path))
        out.weights.append(read_file(path, strict=strict, epoch=epoch))
    return out


def read_targets(path: str, names: Sequence[str], column: str | None = None) -> np.ndarray:
    """The targets in ``path`` for the networks ``names``.

    One number per line is read in the order of the networks. A CSV (comma-separated, an
    optional header) whose first column names the networks is matched by path, or by file
    name when that is unique; the value is read from ``column`` (a header name), else the
    last column.
    """
    rows = _csv_rows(path)
    header = rows[0] if rows and not _is_number(rows[0][-1]) else None
    body = rows[1:] if header else rows
    if not body:
        raise SNEError(f"{path}: expected one target per network, found none")
    index = _column_index(path, header, column)
    values = [_number(path, i + 1 + bool(header), row, index) for i, row in enumerate(body)]
    if all(len(row) == 1 for row in body):
        if len(values) != len(names):
            raise SNEError(
                f"{path}: expected {len(names)} targets (one per network, in order), "
                f"got {len(values)}"
            )
        return np.array(values, dtype=np.float64)
    by_name = {row[0]: v for row, v in zip(body, values)}
    return np.array([_lookup(path, by_name, name) for name in names], dtype=np.float64)


def _csv_rows(path: str) -> list[list[str]]:
    try:
        with open(path, newline="") as f:
            rows = [[c.strip() for c in row] for row in csv.reader(f)]
    except OSError as exc:
        raise SNEError(f"expected a readable targets file, got {path!r}: {exc.strerror}") from None
    return [row for row in rows if any(row)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column_index(path: str, header: list[str] | None, column: str | None) -> int:
    if column is None:
        return -1
    if header is None or column not in header:
        found = "no header row" if header is None else f"columns {header}"
        raise SNEError(f"{path}: expected a column named {column!r}, found {found}")
    return header.index(column)


def _number(path: str, line: int, row: list[str], index: int) -> float:
    try:
        return float(row[index])
    except (ValueError, IndexError):
        raise SNEError(
            f"{path}, line {line}: expected a number in column {index if index >= 0 else 'last'}, "
            f"got {row}"
        ) from None


def _lookup(path: str, by_name: dict[str, float], name: str) -> float:
    if name in by_name:
        return by_name[name]
    resolved = {str(Path(k).resolve()): v for k, v in by_name.items()}
    if str(Path(name).resolve()) in resolved:
        return resolved[str(Path(name).resolve())]
    base = [v for k, v in by_name.items() if Path(k).name == Path(name).name]
    if len(base) == 1:
        return base[0]
    raise SNEError(
        f"{path}: expected a row for network {name!r} (first column: the network's path or "
        f"file name), found {'several' if base else 'none'}"
    )
