"""Input conversion of the baselines: lists of networks in any readable form."""

from __future__ import annotations

import sys

import pytest
import torch

from sne_plugin import NetworkWeights, SNEError
from sne_plugin.baselines._common import as_networks, resolve_loss


def test_network_weights_pass_through():
    net = NetworkWeights.from_pairs([(torch.ones(3, 2), None)])
    assert as_networks([net])[0] is net


def test_pair_lists_are_read(monkeypatch):
    pairs = [(torch.ones(5, 4), torch.zeros(5)), (torch.ones(2, 5), None)]
    assert as_networks([pairs])[0].num_params == 35
    monkeypatch.setitem(sys.modules, "sne_plugin.readers", None)  # readers not importable
    net = as_networks([pairs, NetworkWeights.from_pairs(pairs)])[0]
    assert net.num_params == 35 and net.source == "X[0]"


def test_fallback_names_the_bad_item(monkeypatch):
    monkeypatch.setitem(sys.modules, "sne_plugin.readers", None)
    with pytest.raises(SNEError, match=r"X\[1\]: expected NetworkWeights or a list of"):
        as_networks([[(torch.ones(2, 2), None)], 3.5])


def test_empty_list_is_rejected():
    with pytest.raises(SNEError, match="expected at least one network, got an empty list"):
        as_networks([])


@pytest.mark.parametrize(("y", "loss"), [([0.0, 0.5, 1.0], "bce"), ([0.1, 1.5], "mse")])
def test_auto_loss(y, loss):
    assert resolve_loss("auto", y) == loss
