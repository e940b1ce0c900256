"""``NetworkWeights.is_finite`` reads CPU float tensors through numpy and the rest through
torch; both must find a NaN or an inf wherever it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sne_plugin import NetworkWeights


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_nan_or_inf_is_found_in_any_tensor_of_any_float_type(dtype, bad) -> None:
    clean = [(torch.ones(4, 3, dtype=dtype), torch.zeros(4, dtype=dtype))] * 2
    assert NetworkWeights.from_pairs(clean).is_finite()
    for layer in range(2):
        for part in range(2):
            pairs = [[w.clone(), b.clone()] for w, b in clean]
            pairs[layer][part].view(-1)[-1] = bad
            assert not NetworkWeights.from_pairs([tuple(p) for p in pairs]).is_finite()


def test_views_and_tensors_that_require_grad() -> None:
    w = torch.ones(6, 4, requires_grad=True)
    assert NetworkWeights.from_pairs([(w, None)]).is_finite()
    strided = torch.ones(8, 8)[::2, ::3]
    strided[1, 1] = float("nan")
    assert not NetworkWeights.from_pairs([(strided, None)]).is_finite()
    neg = torch._neg_view(torch.tensor([[1.0, float("inf")]]))
    assert neg.is_neg()
    assert not NetworkWeights.from_pairs([(neg, None)]).is_finite()
    assert np.isfinite(NetworkWeights.from_pairs([(torch.ones(2, 2), None)]).flatten()).all()
