"""The singular-value summary the trees of ``stats_boost`` read beside the weight statistics."""

from __future__ import annotations

import numpy as np
import pytest

from sne_plugin import NetworkWeights
from sne_plugin.encoder.stats import SPECTRAL_FEATURES, spectral_summary


def _summary(net: NetworkWeights) -> dict[str, float]:
    return dict(zip(SPECTRAL_FEATURES, spectral_summary(net.spec, net.flatten())))


def test_each_statistic_against_the_singular_values() -> None:
    first = np.diag([3.0, 1.0])  # sigma = 3, 1
    conv = np.random.default_rng(0).normal(size=(4, 2, 3, 3))
    net = NetworkWeights.from_pairs([(first, np.ones(2)), (conv, None)])
    got = _summary(net)
    assert got["first_log10_sigma_max"] == pytest.approx(np.log10(3))
    assert got["first_stable_rank"] == pytest.approx(10 / 9 / 2)
    share = np.array([0.9, 0.1])
    assert got["first_effective_rank"] == pytest.approx(np.exp(-(share * np.log(share)).sum()) / 2)
    assert got["first_log10_frobenius"] == pytest.approx(0.5 * np.log10(10))
    assert got["first_sigma_ratio"] == pytest.approx(1 / 3)
    sigma = np.linalg.svd(conv.reshape(4, -1), compute_uv=False)  # rows: output channels
    assert got["last_log10_sigma_max"] == pytest.approx(np.log10(sigma[0]))
    assert got["last_sigma_ratio"] == pytest.approx(sigma[-1] / sigma[0])
    assert got["max_log10_sigma_max"] == pytest.approx(max(np.log10(3), np.log10(sigma[0])))
    assert got["mean_stable_rank"] == pytest.approx(
        (10 / 9 / 2 + (sigma**2).sum() / sigma[0] ** 2 / 4) / 2
    )
    assert got["sum_log10_sigma_max"] == pytest.approx(np.log10(3) + np.log10(sigma[0]))


def test_norm_scales_and_biases_are_not_matrices() -> None:
    with_norm = NetworkWeights.from_pairs([(np.eye(3), np.zeros(3)), (np.ones(3), np.zeros(3))])
    got = spectral_summary(with_norm.spec, with_norm.flatten())
    only = NetworkWeights.from_pairs([(np.eye(3), np.zeros(3))])
    np.testing.assert_allclose(got, spectral_summary(only.spec, only.flatten()))
    vectors = NetworkWeights.from_pairs([(np.ones(3), np.zeros(3))])
    assert np.isnan(spectral_summary(vectors.spec, vectors.flatten())).all()
    zeros = NetworkWeights.from_pairs([(np.zeros((3, 2)), None)])
    assert np.isnan(spectral_summary(zeros.spec, zeros.flatten())).all()


def test_a_matrix_too_large_for_a_full_svd_gets_its_norm_by_lanczos_iteration() -> None:
    g = np.random.default_rng(1)
    u, _ = np.linalg.qr(g.normal(size=(2048, 64)))
    v, _ = np.linalg.qr(g.normal(size=(1024, 64)))
    big = (u * np.linspace(10, 1, 64)) @ v.T + 0.01 * g.normal(size=(2048, 1024))
    small = g.normal(size=(8, 8))
    got = _summary(NetworkWeights.from_pairs([(big.astype(np.float32), None), (small, None)]))
    exact = np.linalg.svd(big.astype(np.float32).astype(np.float64), compute_uv=False)
    assert got["first_log10_sigma_max"] == pytest.approx(np.log10(exact[0]), abs=1e-4)
    assert got["first_stable_rank"] == pytest.approx(
        (exact**2).sum() / exact[0] ** 2 / 1024, rel=1e-3
    )
    assert np.isnan(got["first_effective_rank"]) and np.isnan(got["first_sigma_ratio"])
    small_sigma = np.linalg.svd(small, compute_uv=False)
    assert got["mean_sigma_ratio"] == pytest.approx(small_sigma[-1] / small_sigma[0])  # NaN skipped
