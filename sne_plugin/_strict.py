"""``strict=False`` for the estimators and the pruner: read what can be read, say so once.

The readers warn once per network about the parameters they skip
(:meth:`sne_plugin.readers._common.Skipped.report`); an estimator reading hundreds of
networks turns those warnings into one, which counts them and quotes the first.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from sne_plugin._inputs import as_networks
from sne_plugin.weights import NetworkWeights

__all__ = ["collected_skips", "read_networks"]

_SKIPPED = "skipped unreadable parameters"


@contextlib.contextmanager
def collected_skips() -> Iterator[list[str]]:
    """Inside the block, the readers' warnings about skipped parameters are collected into
    the list it gives (filled when the block ends); every other warning goes on as usual."""
    skips: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield skips
    for item in caught:
        if _SKIPPED in str(item.message):
            skips.append(str(item.message))
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)


def read_networks(X: object, *, strict: bool, owner: str) -> list[NetworkWeights]:
    """:func:`sne_plugin._inputs.as_networks` with ``strict``; without it, one warning
    (naming ``owner``) for all the networks whose parameters were partly skipped.

    >>> import torch, warnings
    >>> odd = torch.nn.Module()
    >>> odd.alpha = torch.nn.Parameter(torch.ones(3))
    >>> odd.fc = torch.nn.Linear(3, 2)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     nets = read_networks([odd, odd], strict=False, owner="SNERegressor")
    >>> len(caught), str(caught[0].message)[:63]
    (1, 'SNERegressor(strict=False): 2 of 2 networks had parameters that')
    """
    if strict:
        return as_networks(X)
    with collected_skips() as skips:
        nets = as_networks(X, strict=False)
    if skips:
        warnings.warn(
            f"{owner}(strict=False): {len(skips)} of {len(nets)} networks had parameters that "
            f"cannot be read, which were skipped; the first: {skips[0]}",
            UserWarning,
            stacklevel=3,
        )
    return nets
