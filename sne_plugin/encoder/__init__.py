"""The set-based network encoder (SNE) and its batching plan."""

from sne_plugin.encoder.model import SNEEncoder, SNENet
from sne_plugin.encoder.plan import Batch, make_batch

__all__ = ["Batch", "SNEEncoder", "SNENet", "make_batch"]
