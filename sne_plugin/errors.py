"""The one exception family of sne-plugin."""

from __future__ import annotations

import reprlib

__all__ = ["SNEError", "describe", "short_repr"]

_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = 4


class SNEError(ValueError):
    """Bad input to sne-plugin: says what was expected, what arrived and where.

    Every error the package raises for a user's input is an ``SNEError`` (a ``ValueError``,
    so ``except ValueError`` keeps working).

    >>> raise SNEError("expected a weight of 2 dims, got shape (3,) at layer 'fc'")
    Traceback (most recent call last):
    ...
    sne_plugin.errors.SNEError: expected a weight of 2 dims, got shape (3,) at layer 'fc'
    """


def describe(obj: object) -> str:
    """A short description of ``obj`` for error messages (type, and shape when it has one)."""
    shape = getattr(obj, "shape", None)
    name = type(obj).__module__ + "." + type(obj).__qualname__
    name = name.removeprefix("builtins.")
    if shape is not None:
        return f"{name} of shape {tuple(shape)}"
    if isinstance(obj, (str, bytes)):
        text = repr(obj)
        return f"{name} {text[:80]}{'...' if len(text) > 80 else ''}"
    return name


def short_repr(obj: object) -> str:
    """``repr(obj)`` cut short, and safe on deeply nested or huge objects (for messages).

    >>> short_repr(((((((1,),),),),),))
    '((((...),),),)'
    """
    try:
        return _REPR.repr(obj)
    except Exception:  # a broken __repr__
        return f"<{type(obj).__name__}>"
