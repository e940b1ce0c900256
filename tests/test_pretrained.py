"""The shipped predictor, its parts, and the held-out searches' separation from its data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sne_plugin import NetworkWeights, SNEError
from sne_plugin.curve import CURVE_FEATURES, curve_features, percentile_ranks
from sne_plugin.pretrained import PRETRAINED_DIR, CurvePredictor, load_pretrained
from sne_plugin.wstats import SUMMARY_SIZE, WeightStatsModel, weight_summary


def _nets(n: int, seed: int = 0) -> list[NetworkWeights]:
    g = torch.Generator().manual_seed(seed)
    return [
        NetworkWeights.from_pairs(
            [
                (torch.randn(8, 4, generator=g) * (0.2 + i / n), torch.zeros(8)),
                (torch.randn(3, 8, generator=g), None),
            ]
        )
        for i in range(n)
    ]


def test_percentile_ranks_and_features() -> None:
    r = percentile_ranks(np.array([3.0, 1.0, 2.0, np.nan]))
    assert r[:3].tolist() == pytest.approx([5 / 6, 1 / 6, 0.5]) and np.isnan(r[3])
    f = curve_features(np.array([0.1, 0.5, 0.9]), np.full(3, np.nan), np.array([0.1, 0.5, 0.9]))
    assert f.shape == (3, len(CURVE_FEATURES))
    assert np.isnan(f[:, 1]).all() and np.isnan(f[:, 4]).all()  # no previous step, no plan
    with pytest.raises(SNEError, match="one length"):
        curve_features(np.zeros(2), np.zeros(3), np.zeros(2))


def test_weight_summary_is_fixed_size_across_architectures() -> None:
    small = NetworkWeights.from_pairs([(torch.ones(2, 2), None)])
    big = _nets(1)[0]
    assert weight_summary(small).shape == weight_summary(big).shape == (SUMMARY_SIZE,)


def test_weight_stats_model_learns_saves_and_refuses_bad_files(tmp_path) -> None:
    nets = _nets(40)
    side = np.column_stack([np.linspace(0, 1, 40), np.full(40, np.nan)])
    y = np.linspace(0, 1, 40) ** 2
    model = WeightStatsModel(epochs=200, random_state=0).fit(nets, y, side)
    pred = model.predict(nets, side)
    assert np.corrcoef(pred, y)[0, 1] > 0.9
    model.save(tmp_path / "m")
    again = WeightStatsModel.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict(nets, side), pred, rtol=1e-6, atol=1e-6)
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    (tmp_path / "m" / "model.json").write_text(json.dumps(dict(config, kind="other")))
    with pytest.raises(SNEError, match="expected kind WeightStatsModel"):
        WeightStatsModel.load(tmp_path / "m")
    with pytest.raises(SNEError, match="not a saved WeightStatsModel"):
        WeightStatsModel.load(tmp_path / "missing")
    with pytest.raises(SNEError, match="side inputs of shape"):
        model.predict(nets, side[:, :1])


def test_the_shipped_predictor_loads_ranks_and_round_trips(tmp_path) -> None:
    p = load_pretrained()
    assert (PRETRAINED_DIR / "predictor.json").stat().st_size < 10_000
    assert sum(f.stat().st_size for f in PRETRAINED_DIR.rglob("*") if f.is_file()) < 5e6
    nets = _nets(6)
    side = curve_features(
        np.linspace(0.2, 0.9, 6), np.linspace(0.1, 0.8, 6), np.linspace(0.2, 0.9, 6), 0.5
    )
    scores = p.predict(nets, side)
    assert scores.shape == (6,) and np.isfinite(scores).all()
    np.testing.assert_allclose(p.predict_embedded(p.embed(nets), side), scores, atol=1e-6)
    p.save(tmp_path / "copy")
    np.testing.assert_allclose(
        load_pretrained(tmp_path / "copy").predict(nets, side), scores, atol=1e-6
    )
    tuned = p.fine_tuned_embedded(p.embed(nets), side, np.linspace(0, 1, 6), epochs=2)
    assert tuned is not p and tuned.info["fine_tuned_on"] == 6
    np.testing.assert_allclose(p.predict(nets, side), scores)  # the shipped one is unchanged
    with pytest.raises(SNEError, match=r"curve features of shape \(6, 5\)"):
        p.predict(nets, side[:, :3])
    with pytest.raises(SNEError, match="predictor folder"):
        CurvePredictor.load(tmp_path / "nothing")


def test_held_out_searches_share_no_dataset_or_family_with_the_meta_zoo() -> None:
    from sne_plugin.research.metazoo import HELD_OUT, META_ZOO_WIDE

    meta_data = {z.dataset for z in META_ZOO_WIDE}  # (META_ZOO and more)
    meta_archs = {z.arch for z in META_ZOO_WIDE}
    for s in HELD_OUT:
        assert s.dataset not in meta_data and s.arch not in meta_archs, s.name
        assert s.seeds >= 10
