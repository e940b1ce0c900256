"""Device choice in one place."""

from __future__ import annotations

import gc

import torch

from sne_plugin.errors import SNEError

__all__ = ["free_device_memory", "is_out_of_memory", "resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None: CUDA when available, else CPU; otherwise the named device, checked."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SNEError(
            f"expected device 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SNEError(
            f"device {device!r} was asked for, but CUDA is not available on this machine"
        )
    return dev


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device out-of-memory error: ``torch.cuda.OutOfMemoryError``, or the generic
    ``RuntimeError`` that some kernels raise ("CUDA out of memory", "CUDA error: out of
    memory")."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and "out of memory" in text and "CUDA" in text


def free_device_memory() -> None:
    """Give the memory of dead tensors back to the device before a retry: collect cycles
    that may hold them, then empty the CUDA cache (without CUDA, nothing to give back)."""
    if torch.cuda.is_available():
        gc.collect()  # a second or so on a large heap: only where it can help
        torch.cuda.empty_cache()
