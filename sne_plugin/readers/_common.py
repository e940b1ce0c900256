"""Helpers shared by the readers: building checked layers and reporting what was skipped."""

from __future__ import annotations

import pickletools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sne_plugin.errors import SNEError
from sne_plugin.readers._limits import check_zip_expansion
from sne_plugin.weights import Layer, LayerKind, NetworkWeights

__all__ = ["Skipped", "check_torch_file", "finish", "make_layer", "shape_of"]


def shape_of(tensor: torch.Tensor | None) -> tuple[int, ...] | None:
    """The shape as a plain tuple (for messages), or None."""
    if tensor is None or tensor.is_nested:  # a nested tensor has no single shape
        return None
    return tuple(tensor.shape)


def _out_dim(kind: LayerKind, weight: torch.Tensor, groups: int) -> int:
    if kind.value.startswith("conv_transpose"):
        return int(weight.shape[1]) * groups
    if kind is LayerKind.NORM:
        return int(weight.numel())
    return int(weight.shape[0])


def make_layer(
    kind: LayerKind,
    name: str,
    weight: object,
    bias: object | None,
    *,
    source: str,
    groups: int = 1,
) -> Layer:
    """A :class:`Layer`, with the bias length checked against the weight's output dim.

    >>> make_layer(LayerKind.DENSE, "fc", torch.ones(3, 2), torch.ones(3), source="demo").spec
    LayerSpec(kind=<LayerKind.DENSE: 'dense'>, name='fc', weight_shape=(3, 2), bias_shape=(3,))
    """
    try:
        layer = Layer(kind, name, weight, bias)  # type: ignore[arg-type]
    except SNEError as exc:
        raise SNEError(f"{source}: {exc}") from None
    if layer.bias is not None:
        expected = _out_dim(kind, layer.weight, groups)
        if layer.bias.numel() != expected:
            raise SNEError(
                f"{source}, layer {name!r} ({kind.value}): expected a bias of length {expected} "
                f"(the output dim of weight {shape_of(layer.weight)}), "
                f"got shape {shape_of(layer.bias)}"
            )
    return layer


@dataclass
class Skipped:
    """Parameters a reader found but could not read: (name, type) pairs."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, what: str) -> None:
        self.items.append((name, what))

    def report(self, source: str, *, strict: bool) -> None:
        """Raise (strict) or warn about everything skipped; do nothing when nothing was."""
        if not self.items:
            return
        listed = ", ".join(f"{name!r} ({what})" for name, what in self.items)
        if strict:
            raise SNEError(
                f"{source}: cannot read the parameters of {len(self.items)} module(s)/op(s): "
                f"{listed}; pass strict=False to skip them"
            )
        warnings.warn(f"{source}: skipped unreadable parameters of {listed}", stacklevel=4)


def finish(
    layers: Sequence[Layer],
    skipped: Skipped,
    *,
    source: str,
    strict: bool,
    is_chain: bool,
    meta: dict[str, object] | None = None,
) -> NetworkWeights:
    """Report what was skipped, refuse an empty network, and build the container."""
    skipped.report(source, strict=strict)
    if not layers:
        raise SNEError(
            f"{source}: expected a network with at least one readable layer "
            "(dense, conv, norm, embedding, attention), found none"
        )
    return NetworkWeights(tuple(layers), source=source, is_chain=is_chain, meta=dict(meta or {}))


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80  # the first byte of a legacy torch.save file (pickle protocol >= 2)


def check_torch_file(path: Path) -> None:
    """Refuse, before torch.load, a file that is no torch checkpoint or that pickles objects
    ``weights_only=True`` will not load (a whole module), saying what it is and what to do."""
    with open(path, "rb") as handle:
        head = handle.read(256)
    if not head:
        raise SNEError(f"{path}: expected a torch checkpoint, got an empty file (0 bytes)")
    if head.startswith(_ZIP_MAGIC):
        check_zip_expansion(path, "torch checkpoint")
        _check_pickled_objects(path)
    elif head[0] == _PICKLE_PROTOCOL:
        _refuse_pickled_objects(path, _legacy_globals(path), modules_only=True)
    else:
        raise SNEError(
            f"{path}: expected a torch checkpoint (torch.save writes a zip archive, starting "
            f"with b'PK'), got {_what_bytes(head)}"
        )


def _what_bytes(head: bytes) -> str:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"a file that is neither a zip archive nor a pickle (it starts with {head[:8]!r})"
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        return f"a text file (it starts with {first!r})"
    return f"a file that is neither a zip archive nor a pickle (it starts with {head[:8]!r})"


def _check_pickled_objects(path: Path) -> None:
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a readable checkpoint: torch.load says why
        return
    _refuse_pickled_objects(path, unsafe, modules_only=False)


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"}


def _legacy_globals(path: Path) -> list[str]:
    """The classes the pickles of a legacy (pre-zip) torch.save file name, read with
    pickletools (nothing is unpickled): magic number, protocol, system info, the object."""
    names: list[str] = []
    with open(path, "rb") as handle:
        for _ in range(4):
            strings: list[str] = []
            try:
                for op, arg, _pos in pickletools.genops(handle):
                    if op.name in _STRING_OPS:
                        strings = [*strings[-1:], str(arg)]
                    elif op.name == "GLOBAL":
                        names.append(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                        names.append(".".join(strings))
            except Exception:  # not a pickle (any more): torch.load says what is wrong
                break
    return list(dict.fromkeys(names))


def _refuse_pickled_objects(path: Path, unsafe: list[str], *, modules_only: bool) -> None:
    modules = [n for n in unsafe if n.startswith(("torch.nn.modules.", "__main__."))]
    if modules_only:  # a legacy file names its storages and builtins too: list the modules
        unsafe = modules
    if not unsafe:
        return
    module = bool(modules)
    what = "a whole pickled module (torch.save(model))" if module else "pickled Python objects"
    listed = ", ".join(unsafe[:4]) + (f" and {len(unsafe) - 4} more" if len(unsafe) > 4 else "")
    raise SNEError(
        f"{path}: expected a state dict (or a checkpoint holding one), got {what}: it "
        f"names the classes {listed}, which torch.load(weights_only=True) refuses to "
        "unpickle, since unpickling can run code from the file. Two ways out: (1) re-save "
        "the weights alone, torch.save(model.state_dict(), PATH), and read that file; (2) "
        "only if you trust the file's source, load it yourself in Python, model = "
        "torch.load(PATH, weights_only=False), and pass the module: read_weights(model)"
    )
