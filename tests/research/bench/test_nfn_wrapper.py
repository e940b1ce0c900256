from __future__ import annotations

import numpy as np
import pytest
import torch

from sne_plugin import NetworkWeights
from sne_plugin.errors import SNEError
from sne_plugin.research.baselines.nfn import NFNRegressor, nfn_incompatibility
from sne_plugin.research.bench.tasks import ZooCache, select_tasks

pytest.importorskip("nfn")


@pytest.fixture(scope="module")
def data(zoo_cache: ZooCache):  # type: ignore[no-untyped-def]
    return select_tasks("smoke", ["in_dist"])[0].load(zoo_cache, 0)


def _permute_hidden(net: NetworkWeights, seed: int) -> NetworkWeights:
    """Permute the hidden units of layer 0 (rows of layer 0, columns of layer 1)."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(net.layers[0].weight.shape[0], generator=gen)
    l0, l1, *rest = net.layers
    assert l0.bias is not None
    return net.with_layers(
        [l0.replace(l0.weight[perm], l0.bias[perm]), l1.replace(l1.weight[:, perm], l1.bias), *rest]
    )


@pytest.mark.parametrize("mode", ["np", "hnp"])
def test_fits_predicts_and_is_invariant(data, mode: str) -> None:  # type: ignore[no-untyped-def]
    model = NFNRegressor(mode=mode, epochs=3, random_state=0).fit(data.X_train, data.y_train)
    pred = model.predict(data.X_test)
    assert pred.shape == (len(data.X_test),) and np.isfinite(pred).all()
    permuted = model.predict([_permute_hidden(n, 1) for n in data.X_test])
    np.testing.assert_allclose(permuted, pred, atol=1e-5)


def test_incompatible_networks(zoo_cache: ZooCache) -> None:
    cross = select_tasks("smoke", ["cross_arch_mlp_d1"])[0].load(zoo_cache, 0)
    reason = nfn_incompatibility(cross.X_train + cross.X_test)
    assert reason == "networks differ in layer count, kernel sizes, inputs or outputs"
    model = NFNRegressor(epochs=1, random_state=0).fit(cross.X_train, cross.y_train)
    with pytest.raises(SNEError, match="NFNRegressor cannot take these networks"):
        model.predict(cross.X_test)


def test_bad_mode() -> None:
    nets = [NetworkWeights.from_pairs([(torch.ones(3, 2), torch.zeros(3))])] * 4
    with pytest.raises(SNEError, match="expected mode in"):
        NFNRegressor(mode="xnp").fit(nets, [0.1, 0.2, 0.3, 0.4])
