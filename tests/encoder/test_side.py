"""Side inputs: checked, standardised, used by the head, kept by persistence; threads; verbose."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from sne_plugin import SNEError, SNERegressor
from sne_plugin._side import SideScaler, read_side
from sne_plugin.testing import scaled_cnn_zoo

FAST = {
    "width": 16,
    "heads": 1,
    "chunk_size": 16,
    "epochs": 25,
    "chunk_depth": 2,
    "random_state": 0,
}


@pytest.fixture(scope="module")
def hidden_zoo():  # type: ignore[no-untyped-def]
    """Targets half carried by the weights, half by a number only the side input holds."""
    nets, y = scaled_cnn_zoo(96, seed=1)
    rng = np.random.default_rng(0)
    hint = rng.uniform(size=len(y))
    return nets, 0.5 * y + 0.5 * hint, hint


def test_the_head_uses_what_only_the_side_inputs_know(hidden_zoo) -> None:  # type: ignore[no-untyped-def]
    nets, target, hint = hidden_zoo
    side = np.c_[hint, np.random.default_rng(1).normal(size=len(hint))]
    plain = SNERegressor(**FAST).fit(nets[:64], target[:64])
    with_side = SNERegressor(**FAST).fit(nets[:64], target[:64], side=side[:64])
    tau_plain = kendalltau(plain.predict(nets[64:]), target[64:]).statistic
    tau_side = kendalltau(with_side.predict(nets[64:], side=side[64:]), target[64:]).statistic
    assert tau_side > tau_plain + 0.1, (tau_plain, tau_side)
    assert with_side.transform(nets[:3]).shape == (3, FAST["width"])  # the embedding alone


def test_named_columns_are_checked_and_survive_pickling(hidden_zoo) -> None:  # type: ignore[no-untyped-def]
    nets, target, hint = hidden_zoo
    side = {"hint": hint[:32], "step": np.ones(32)}
    reg = SNERegressor(**{**FAST, "epochs": 2}).fit(nets[:32], target[:32], side=side)
    assert reg.side_.names == ("hint", "step")
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_allclose(
        again.predict(nets[:32], side=side), reg.predict(nets[:32], side=side)
    )
    with pytest.raises(SNEError, match=r"fitted with 2 side input\(s\) \(hint, step\)"):
        reg.predict(nets[:2])
    with pytest.raises(SNEError, match=r"named \['hint', 'step'\], got \['step', 'hint'\]"):
        reg.predict(nets[:2], side={"step": [1, 1], "hint": [0.1, 0.2]})
    with pytest.raises(SNEError, match="expected 2 side input"):
        reg.predict(nets[:2], side=np.ones((2, 3)))
    reg.partial_fit(nets[:32], target[:32], side=side)  # the same columns keep training


def test_a_model_without_side_inputs_refuses_them(hidden_zoo) -> None:  # type: ignore[no-untyped-def]
    nets, target, _ = hidden_zoo
    reg = SNERegressor(**{**FAST, "epochs": 1}).fit(nets[:16], target[:16])
    with pytest.raises(SNEError, match="fitted without side inputs"):
        reg.predict(nets[:2], side=np.ones((2, 1)))


@pytest.mark.parametrize(
    ("side", "match"),
    [
        (np.ones(4), r"1-D array of shape \(4,\); use side.reshape\(-1, 1\)"),
        (np.ones((3, 2)), r"shape \(4, k\), one row per network, got shape \(3, 2\)"),
        ([["a", "b"]] * 4, "expected numeric side inputs"),
        (np.full((4, 1), np.inf), "finite or NaN"),
    ],
)
def test_bad_side_inputs_say_what_was_expected(side: object, match: str) -> None:
    with pytest.raises(SNEError, match=match):
        read_side(side, 4)


def test_unknown_values_become_the_training_mean() -> None:
    scaler = SideScaler.fit(np.array([[1.0, 5.0], [3.0, np.nan], [np.nan, 5.0]]), 3)
    out = scaler.transform(np.array([[np.nan, np.nan], [3.0, 5.0]]), 2)
    np.testing.assert_allclose(out, [[0.0, 0.0], [1.0, 0.0]])  # a constant column stays 0


def test_threads_are_set_while_fitting_and_restored(hidden_zoo) -> None:  # type: ignore[no-untyped-def]
    nets, target, _ = hidden_zoo
    seen: list[int] = []
    before = torch.get_num_threads()

    class Spy(SNERegressor):
        def _train(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(torch.get_num_threads())
            return super()._train(*args, **kwargs)

    torch.set_num_threads(2)
    try:
        Spy(**{**FAST, "epochs": 1, "threads": 1}).fit(nets[:8], target[:8])
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SNEError, match="threads must be None or a positive integer"):
        SNERegressor(threads=0).fit(nets[:4], target[:4])


def test_verbose_auto_stays_quiet_on_a_quick_fit(hidden_zoo, capsys) -> None:  # type: ignore[no-untyped-def]
    nets, target, _ = hidden_zoo
    SNERegressor(**{**FAST, "epochs": 2}).fit(nets[:8], target[:8])
    assert "SNE fit" not in capsys.readouterr().err
    SNERegressor(**{**FAST, "epochs": 2, "verbose": True}).fit(nets[:8], target[:8])
    assert "SNE fit" in capsys.readouterr().err


def test_verbose_auto_shows_the_bar_once_a_fit_runs_long(hidden_zoo, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    nets, target, _ = hidden_zoo
    monkeypatch.setattr("sne_plugin.regressor._AUTO_AFTER_S", 0.0)  # every fit counts as long
    SNERegressor(**{**FAST, "epochs": 3}).fit(nets[:8], target[:8])
    assert "SNE fit" in capsys.readouterr().err


def test_a_pipeline_passes_side_inputs_to_fit_and_predict(hidden_zoo) -> None:  # type: ignore[no-untyped-def]
    from sklearn.pipeline import Pipeline

    nets, target, hint = hidden_zoo
    side = hint[:, None]
    pipe = Pipeline([("sne", SNERegressor(**{**FAST, "epochs": 2}))])
    pipe.fit(nets[:16], target[:16], sne__side=side[:16])
    assert pipe.predict(nets[16:20], side=side[16:20]).shape == (4,)
