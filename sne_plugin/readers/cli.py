"""The table ``sne inspect`` prints: the layers the readers find in a model file."""

from __future__ import annotations

from sne_plugin.weights import NetworkWeights

__all__ = ["format_table"]


def format_table(net: NetworkWeights) -> str:
    """The layer table of ``net.spec`` (see ``NetworkSpec.__str__``), then the source and
    ``is_chain``.

    >>> import torch
    >>> net = NetworkWeights.from_pairs([(torch.zeros(4, 2), torch.zeros(4))], source="demo")
    >>> print(format_table(net))
    #  kind   name    weight  bias  params
    0  dense  layer0  4x2     4         12
    total: 1 layers, 12 parameters
    source: demo
    is_chain: True
    """
    return "\n".join([str(net.spec), f"source: {net.source}", f"is_chain: {net.is_chain}"])
