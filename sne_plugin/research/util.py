"""Helpers shared by the research harness (zoo, bench): "did you mean" lookups, text histograms."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

import numpy as np

from sne_plugin.errors import SNEError

T = TypeVar("T")

__all__ = ["lookup", "text_histogram"]


def lookup(table: Mapping[str, T], name: str, what: str) -> T:
    """``table[name]`` or an SNEError that lists the choices and suggests the closest.

    >>> lookup({"digits": 1, "shapes": 2}, "digit", "dataset")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sne_plugin.errors.SNEError: unknown dataset 'digit'; did you mean 'digits'? ...
    """
    if name in table:
        return table[name]
    close = difflib.get_close_matches(str(name), list(table), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SNEError(f"unknown {what} {name!r}{hint} (choices: {', '.join(table)})")


def text_histogram(
    values: Iterable[float], *, bins: int = 10, width: int = 40, lo: float = 0.0, hi: float = 1.0
) -> str:
    """A text histogram of ``values`` on ``[lo, hi]`` plus its 5/25/50/75/95% quantiles.

    >>> print(text_histogram([0.1, 0.5, 0.55, 0.9], bins=2, width=4))
    [0.00, 0.50)     1 #
    [0.50, 1.00]     3 ####
    quantiles  5%:0.16 25%:0.40 50%:0.53 75%:0.64 95%:0.85  (n=4)
    """
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return "(no values)"
    counts, edges = np.histogram(np.clip(arr, lo, hi), bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    lines = []
    for i, c in enumerate(counts):
        close = "]" if i == bins - 1 else ")"
        bar = "#" * round(width * int(c) / top)
        lines.append(f"[{edges[i]:.2f}, {edges[i + 1]:.2f}{close} {int(c):5d} {bar}")
    qs = np.quantile(arr, [0.05, 0.25, 0.5, 0.75, 0.95])
    pcts = (5, 25, 50, 75, 95)
    lines.append(
        "quantiles  " + " ".join(f"{p}%:{q:.2f}" for p, q in zip(pcts, qs)) + f"  (n={arr.size})"
    )
    return "\n".join(lines)
