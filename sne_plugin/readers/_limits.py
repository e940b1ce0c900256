"""Sizes a file declares, checked before anything is decompressed or allocated.

A zip archive (``.npz``, a torch checkpoint) declares each member's uncompressed size; an
``.npy`` member declares its shape and dtype in a short header. A file may not expand to more
than :data:`MAX_EXPANSION` times its own size, and no array may declare more elements than the
parameter cap (:func:`sne_plugin.weights.max_parameters`) or more bytes than its member holds.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np

from sne_plugin.errors import SNEError
from sne_plugin.weights import max_parameters

__all__ = ["MAX_EXPANSION", "check_bytes_expansion", "check_npz_headers", "check_zip_expansion"]

MAX_EXPANSION = 100
"""The most uncompressed bytes a compressed archive may declare per byte of file (plus 1 MiB):
float weights deflate by about 1.1x, an archive of deflated zeros by 1,000x."""
_SLACK = 1 << 20
_MAX_HEADER = 10_000


def check_zip_expansion(path: Path, what: str) -> list[zipfile.ZipInfo] | None:
    """The archive's members, after checking their declared total size against the file's
    size; None when ``path`` is not a zip archive (its reader reports that)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    _check_total(infos, path.stat().st_size, f"{path}: this {what}")
    return infos


def check_bytes_expansion(data: bytes, what: str) -> None:
    """:func:`check_zip_expansion` for an archive held in memory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    _check_total(infos, len(data), f"this {what}")


def _check_total(infos: list[zipfile.ZipInfo], size: int, where: str) -> None:
    total = sum(info.file_size for info in infos)
    if total > MAX_EXPANSION * size + _SLACK:
        raise SNEError(
            f"{where} of {size:,} bytes declares {total:,} bytes once "
            f"decompressed, over the cap of {MAX_EXPANSION}x its size "
            "(sne_plugin.readers._limits.MAX_EXPANSION); refusing to decompress it"
        )


def check_npz_headers(path: Path) -> None:
    """Each ``.npy`` member's declared shape against the parameter cap and its member's size."""
    infos = check_zip_expansion(path, ".npz archive")
    if infos is None:
        return
    with zipfile.ZipFile(path) as archive:
        for info in infos:
            if info.filename.endswith(".npy"):
                _check_member(path, archive, info)


def _check_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    key = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as handle:
            version = np.lib.format.read_magic(handle)
            reader = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = reader(handle, max_header_size=_MAX_HEADER)
    except Exception:  # not an npy header: np.load reports it
        return
    count = math.prod(int(n) for n in shape)
    limit = max_parameters()
    if count > limit:
        raise SNEError(
            f"{path}: array {key!r} declares shape {tuple(shape)} ({count:,} elements), over "
            f"the cap max_parameters={limit:,}; if the file is trusted, raise it: "
            "read_weights(..., max_parameters=N)"
        )
    if not dtype.hasobject and count * dtype.itemsize > info.file_size:
        raise SNEError(
            f"{path}: array {key!r} declares shape {tuple(shape)} of {dtype} "
            f"({count * dtype.itemsize:,} bytes) but its member holds {info.file_size:,}; "
            "the file is truncated or forged"
        )
