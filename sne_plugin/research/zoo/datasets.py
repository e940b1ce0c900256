"""Datasets for zoos, all offline: bundled, generated, or read from torchvision-format folders.

Every loader returns ``(X_train, y_train, X_test, y_test)``: float32 images shaped
``(N, 1, size, size)`` (channel first, values in [0, 1]) and int64 labels 0-9.

- ``digits``: scikit-learn's bundled 8x8 digits, a fixed 80/20 split (independent of seed).
- ``font_digits`` / ``font_letters``: the digits 0-9 / letters A-J rendered with the
  TrueType fonts that ship with matplotlib and Pillow's default font, with random rotation,
  stroke, scale and shift, fit to 32x32, reduced to 8x8, plus Gaussian noise.
- ``shapes``: ten procedural shape classes drawn with numpy at 24x24, reduced to 8x8.
- ``gratings``: sinusoidal gratings, ten classes of five orientations x two spatial
  frequencies, with random phase, contrast and orientation jitter, drawn at 24x24, reduced.
- ``mixtures``: scikit-learn's ``make_classification`` (64 features, 10 classes of two
  Gaussian clusters each) squashed to [0, 1] and laid out as 8x8 "images": a tabular task.
- ``mnist`` / ``fashion_mnist`` / ``cifar10``: torchvision's on-disk formats under ``root``
  (``root/MNIST/raw/train-images-idx3-ubyte`` ..., ``root/cifar-10-batches-py/data_batch_1``
  ...), read without torchvision, converted to grayscale and resized to ``size``.

Generated sets are deterministic in ``seed`` and cached in memory only.

>>> X, y, Xt, yt = load_dataset("digits")
>>> X.shape, X.dtype, int(y.max()), len(Xt)
((1438, 1, 8, 8), dtype('float32'), 9, 359)
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from sne_plugin._imports import optional_import
from sne_plugin.errors import SNEError
from sne_plugin.research.util import lookup

__all__ = ["DATASETS", "load_dataset"]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_DEFAULT_N = 3000


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    n: int | None = None,
    root: str | os.PathLike[str] | None = None,
    size: int = 8,
) -> Arrays:
    """Load dataset ``name`` as ``(X_train, y_train, X_test, y_test)`` (see the module doc).

    ``n`` caps the number of samples (train + test, 80/20; generated sets default to 3,000);
    ``root`` is the folder of torchvision-format files for the on-disk datasets.
    """
    lookup(DATASETS, name, "dataset")
    if n is not None and n < 10:
        raise SNEError(f"dataset {name!r}: expected n >= 10 samples, got {n=}")
    if size < 4:
        raise SNEError(f"dataset {name!r}: expected an image size >= 4, got {size=}")
    root_key = None if root is None else str(Path(root).expanduser().resolve())
    arrays = _load_cached(name, seed, n, root_key, size)
    return tuple(a.copy() for a in arrays)  # type: ignore[return-value]


@functools.lru_cache(maxsize=16)
def _load_cached(name: str, seed: int, n: int | None, root: str | None, size: int) -> Arrays:
    if name in _ON_DISK:
        if root is None:
            raise SNEError(
                f"dataset {name!r} is read from disk: pass root= (the folder that "
                f"holds {_ON_DISK_HINT[name]})"
            )
        return _cap(_ON_DISK[name](Path(root), size), n)
    X, y = DATASETS[name](seed, n or _DEFAULT_N) if name != "digits" else _digits()
    if name == "digits" and n is not None:
        X, y = X[:n], y[:n]
    if X.shape[-1] != size:
        X = _resize(X, size)
    return _split(X, y)


def _split(X: np.ndarray, y: np.ndarray) -> Arrays:
    n_test = len(X) // 5
    k = len(X) - n_test
    return X[:k], y[:k], X[k:], y[k:]


def _cap(arrays: Arrays, n: int | None) -> Arrays:
    if n is None:
        return arrays
    n_test = n // 5
    Xtr, ytr, Xte, yte = arrays
    return Xtr[: n - n_test], ytr[: n - n_test], Xte[:n_test], yte[:n_test]


def _resize(X: np.ndarray, size: int) -> np.ndarray:
    """Area-average (or bilinear when enlarging) resize of ``(N, C, H, W)`` images."""
    t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    if t.shape[-1] >= size and t.shape[-2] >= size:
        out = F.adaptive_avg_pool2d(t, size)
    else:
        out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return out.numpy().astype(np.float32)


# --- scikit-learn digits -------------------------------------------------------------------


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.RandomState(0).permutation(len(bunch.target))  # the fixed split
    X = (bunch.images[order] / 16.0).astype(np.float32)[:, None]
    return X, bunch.target[order].astype(np.int64)


# --- generated: font glyphs ----------------------------------------------------------------

_DIGITS = "0123456789"
_LETTERS = "ABCDEFGHIJ"


def _font_digits(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    return _render_glyphs(_DIGITS, seed, n)


def _font_letters(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    return _render_glyphs(_LETTERS, seed, n)


def _render_glyphs(chars: str, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    fonts = _usable_fonts(chars)
    rng = np.random.default_rng([seed, 7])
    y = rng.integers(0, len(chars), size=n)
    X = np.empty((n, 1, 8, 8), dtype=np.float32)
    for i in range(n):
        big = _glyph_image(chars[y[i]], fonts[rng.integers(len(fonts))], rng)
        small = big.reshape(8, 4, 8, 4).mean(axis=(1, 3))
        X[i, 0] = np.clip(small + rng.normal(0.0, 0.05, size=(8, 8)), 0.0, 1.0)
    return X, y.astype(np.int64)


def _font_sources() -> list[str]:
    """The TrueType files bundled with matplotlib (no "Display" fonts) plus Pillow's default."""
    matplotlib = optional_import("matplotlib", extra="zoo")
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = sorted(str(p) for p in folder.glob("*.ttf") if "Display" not in p.name)
    return [*files, "<pillow-default>"]


def _open_font(source: str, px: int) -> object:
    image_font = optional_import("PIL.ImageFont", extra="zoo")
    if source == "<pillow-default>":
        return image_font.load_default(size=px)
    return image_font.truetype(source, px)


@functools.lru_cache(maxsize=4)
def _usable_fonts(chars: str) -> tuple[str, ...]:
    """Fonts whose glyphs look like the chars: each glyph must be nearest to its own char in
    the first font's rendering (symbol fonts map ASCII to unrelated glyphs and fail)."""
    sources = _font_sources()
    reference = _glyph_prints(sources[0], chars)
    usable = []
    for source in sources:
        try:
            prints = _glyph_prints(source, chars)
        except OSError:
            continue
        if prints is not None and reference is not None:
            nearest = np.argmax(prints @ reference.T, axis=1)
            if (nearest == np.arange(len(chars))).all():
                usable.append(source)
    if not usable:
        raise SNEError(f"no usable font found to render {chars!r} (looked in matplotlib's fonts)")
    return tuple(usable)


def _glyph_prints(source: str, chars: str) -> np.ndarray | None:
    """Each char's glyph cropped, resized to 12x12 and normalised (rows), or None if blank."""
    image_mod = optional_import("PIL.Image", extra="zoo")
    rows = []
    for c in chars:
        img = image_mod.fromarray(_draw(c, _open_font(source, 28), 0))
        box = img.getbbox()
        if box is None:
            return None
        v = np.asarray(img.crop(box).resize((12, 12), image_mod.BILINEAR), dtype=np.float64)
        v = v.ravel() - v.mean()
        rows.append(v / (np.linalg.norm(v) + 1e-9))
    return np.stack(rows)


def _draw(char: str, font: object, stroke: int) -> np.ndarray:
    image_mod = optional_import("PIL.Image", extra="zoo")
    draw_mod = optional_import("PIL.ImageDraw", extra="zoo")
    img = image_mod.new("L", (64, 64), 0)
    draw_mod.Draw(img).text((8, 4), char, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    return np.asarray(img, dtype=np.uint8)


def _glyph_image(char: str, source: str, rng: np.random.Generator) -> np.ndarray:
    """One glyph: random size, stroke and rotation, fit into 32x32, random scale, small shift."""
    image_mod = optional_import("PIL.Image", extra="zoo")
    font = _open_font(source, int(rng.integers(22, 34)))
    arr = _draw(char, font, int(rng.integers(0, 3)))
    img = image_mod.fromarray(arr).rotate(float(rng.uniform(-12, 12)), resample=image_mod.BILINEAR)
    box = img.getbbox() or (0, 0, 64, 64)
    glyph = img.crop(box)
    target = int(32 * rng.uniform(0.75, 0.95))
    scale = target / max(glyph.size)
    w, h = max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))
    glyph = glyph.resize((w, h), resample=image_mod.BILINEAR)
    canvas = image_mod.new("L", (32, 32), 0)
    x0 = min(max((32 - w) // 2 + int(rng.integers(-2, 3)), 0), 32 - w)
    y0 = min(max((32 - h) // 2 + int(rng.integers(-2, 3)), 0), 32 - h)
    canvas.paste(glyph, (x0, y0))
    return np.asarray(canvas, dtype=np.float32) / 255.0


# --- generated: procedural shapes ----------------------------------------------------------


def _shapes(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 11])
    y = rng.integers(0, 10, size=n)
    yy, xx = np.mgrid[0:24, 0:24].astype(np.float32) + 0.5
    X = np.empty((n, 1, 8, 8), dtype=np.float32)
    for i in range(n):
        big = _shape_image(int(y[i]), yy, xx, rng)
        small = big.reshape(8, 3, 8, 3).mean(axis=(1, 3))
        X[i, 0] = np.clip(small + rng.normal(0.0, 0.08, size=(8, 8)), 0.0, 1.0)
    return X, y.astype(np.int64)


def _shape_image(
    label: int, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Shape ``label`` at a random centre, size, angle and thickness on a 24x24 grid."""
    cy, cx = rng.uniform(8, 16, size=2)
    r = rng.uniform(4.5, 8.0)
    t = rng.uniform(1.2, 2.6)
    a = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
    v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
    d = np.hypot(u, v)
    return _SHAPES[label](u, v, d, r, t).astype(np.float32)


_ShapeFn = Callable[[np.ndarray, np.ndarray, np.ndarray, float, float], np.ndarray]
_SHAPES: tuple[_ShapeFn, ...] = (
    lambda u, v, d, r, t: d <= r,  # disc
    lambda u, v, d, r, t: np.abs(d - r) <= t / 2,  # ring
    lambda u, v, d, r, t: np.maximum(np.abs(u), np.abs(v)) <= r * 0.8,  # square
    lambda u, v, d, r, t: np.abs(np.maximum(np.abs(u), np.abs(v)) - r * 0.8) <= t / 2,  # frame
    lambda u, v, d, r, t: (v <= r * 0.6) & (v >= 1.7 * np.abs(u) - r * 0.9),  # triangle
    lambda u, v, d, r, t: ((np.abs(u) <= t / 2) | (np.abs(v) <= t / 2)) & (d <= r),  # plus
    lambda u, v, d, r, t: (np.abs(u) <= t / 2) & (np.abs(v) <= r),  # bar
    lambda u, v, d, r, t: (np.abs(u) + np.abs(v)) <= r,  # diamond
    lambda u, v, d, r, t: (
        ((np.abs(u) <= t / 2) | (np.abs(v) <= t / 2)) & (d <= r) & ((u >= -t / 2) & (v >= -t / 2))
    ),  # corner ("L")
    lambda u, v, d, r, t: (np.abs(np.abs(u) - r * 0.45) <= t / 2) & (np.abs(v) <= r * 0.8),  # ||
)


# --- generated: gratings and Gaussian mixtures ----------------------------------------------


def _gratings(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ``k``: orientation ``36 * (k % 5)`` degrees (+- 8), ``0.04`` or ``0.08`` cycles per
    pixel of the 24x24 grid (``k // 5``), random phase and contrast."""
    rng = np.random.default_rng([seed, 13])
    y = rng.integers(0, 10, size=n)
    yy, xx = np.mgrid[0:24, 0:24].astype(np.float32) + 0.5
    X = np.empty((n, 1, 8, 8), dtype=np.float32)
    for i in range(n):
        angle = np.deg2rad(36.0 * (y[i] % 5) + rng.uniform(-8, 8))
        freq = (0.04, 0.08)[y[i] // 5] * rng.uniform(0.9, 1.1)
        wave = np.sin(
            2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi)
        )
        big = 0.5 + 0.5 * rng.uniform(0.4, 1.0) * wave
        small = big.reshape(8, 3, 8, 3).mean(axis=(1, 3))
        X[i, 0] = np.clip(small + rng.normal(0.0, 0.1, size=(8, 8)), 0.0, 1.0)
    return X, y.astype(np.int64)


def _mixtures(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n,
        n_features=64,
        n_informative=16,
        n_redundant=8,
        n_classes=10,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=seed,
    )
    squashed = 1.0 / (1.0 + np.exp(-X))  # into [0, 1], like pixel values
    return squashed.reshape(n, 1, 8, 8).astype(np.float32), y.astype(np.int64)


# --- torchvision formats on disk -----------------------------------------------------------


def _find(folder: Path, stem: str) -> Path:
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    raise SNEError(
        f"missing file {stem!r} (or {stem}.gz) in {folder} (expected torchvision's raw layout)"
    )


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format): a big-endian magic (type 0x08, ndim), dims, then uint8."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise SNEError(f"{path}: not an IDX file of unsigned bytes (bad magic {raw[:4]!r})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise SNEError(
            f"{path}: header says {dims} = {int(np.prod(dims))} values, found {data.size}"
        )
    return data.reshape(dims)


def _idx_dataset(folder_name: str) -> Callable[[Path, int], Arrays]:
    def load(root: Path, size: int) -> Arrays:
        folder = root / folder_name / "raw"
        if not folder.is_dir():
            raise SNEError(
                f"dataset folder {folder} not found (expected {folder_name}/raw under root={root})"
            )
        parts = []
        for split in ("train", "t10k"):
            images = _read_idx(_find(folder, f"{split}-images-idx3-ubyte"))
            labels = _read_idx(_find(folder, f"{split}-labels-idx1-ubyte"))
            if images.ndim != 3 or len(images) != len(labels):
                raise SNEError(
                    f"{folder}: {split} images {images.shape} do not match labels {labels.shape}"
                )
            X = _resize(images[:, None].astype(np.float32) / 255.0, size)
            parts += [X, labels.astype(np.int64)]
        return parts[0], parts[1], parts[2], parts[3]

    return load


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10's published python batches contain (dicts, lists, bytes,
    numpy arrays); any other global is refused, so a foreign pickle cannot run code."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in a CIFAR batch")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # CIFAR-10 is published only as python pickles; we read it with a restricted unpickler.
    try:
        batch = _CifarUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        data = np.asarray(batch.get("data", batch.get(b"data")), dtype=np.uint8)
        labels = np.asarray(batch.get("labels", batch.get(b"labels")), dtype=np.int64)
    except (pickle.UnpicklingError, AttributeError, EOFError, TypeError, ValueError) as exc:
        raise SNEError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise SNEError(
            f"{path}: expected data (N, 3072) and N labels, got {data.shape}, {labels.shape}"
        )
    rgb = data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    gray = rgb[:, 0] * 0.299 + rgb[:, 1] * 0.587 + rgb[:, 2] * 0.114
    return gray[:, None], labels


def _cifar10(root: Path, size: int) -> Arrays:
    folder = root / "cifar-10-batches-py"
    if not folder.is_dir():
        raise SNEError(
            f"dataset folder {folder} not found (expected cifar-10-batches-py under root={root})"
        )
    train = [_read_cifar_batch(_find(folder, f"data_batch_{i}")) for i in range(1, 6)]
    Xte, yte = _read_cifar_batch(_find(folder, "test_batch"))
    Xtr = np.concatenate([b[0] for b in train])
    ytr = np.concatenate([b[1] for b in train])
    return _resize(Xtr, size), ytr, _resize(Xte, size), yte


_ON_DISK: dict[str, Callable[[Path, int], Arrays]] = {
    "mnist": _idx_dataset("MNIST"),
    "fashion_mnist": _idx_dataset("FashionMNIST"),
    "cifar10": _cifar10,
}
_ON_DISK_HINT = {
    "mnist": "MNIST/raw/",
    "fashion_mnist": "FashionMNIST/raw/",
    "cifar10": "cifar-10-batches-py/",
}

DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "digits": lambda seed, n: _digits(),
    "font_digits": _font_digits,
    "font_letters": _font_letters,
    "shapes": _shapes,
    "gratings": _gratings,
    "mixtures": _mixtures,
    **{k: lambda seed, n: (np.empty(0), np.empty(0)) for k in _ON_DISK},  # names only
}
"""Dataset names; the on-disk ones are read by :func:`load_dataset` with ``root=``."""
