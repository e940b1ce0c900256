"""Input conversion of the baselines: lists of networks in any readable form."""

from __future__ import annotations

import pytest
import torch

from sne_plugin import NetworkWeights, SNEError
from sne_plugin.research.baselines._common import as_networks, resolve_loss


def test_network_weights_pass_through():
    net = NetworkWeights.from_pairs([(torch.ones(3, 2), None)])
    assert as_networks([net])[0] is net


def test_pair_lists_are_read():
    pairs = [(torch.ones(5, 4), torch.full((5,), 0.1)), (torch.ones(2, 5), None)]
    nets = as_networks([pairs, NetworkWeights.from_pairs(pairs)])
    assert [net.num_params for net in nets] == [35, 35]


def test_bad_item_is_named():
    with pytest.raises(SNEError, match=r"X\[1\]: expected an nn.Module"):
        as_networks([[(torch.ones(2, 2), None)], 3.5])


def test_empty_list_is_rejected():
    with pytest.raises(SNEError, match="expected at least one network in X, got an empty list"):
        as_networks([])


@pytest.mark.parametrize(("y", "loss"), [([0.0, 0.5, 1.0], "bce"), ([0.1, 1.5], "mse")])
def test_auto_loss(y, loss):
    assert resolve_loss("auto", y) == loss


def test_bad_loss_names_the_valid_ones():
    with pytest.raises(SNEError, match=r"one of \('auto', 'bce', 'mse'\), but got loss='l1'"):
        resolve_loss("l1", [0.5])
