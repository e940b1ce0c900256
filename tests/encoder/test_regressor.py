"""SNERegressor: learning, sklearn contracts, determinism, persistence and bad input."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from sklearn.base import clone, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from sne_plugin import NetworkWeights, SNEError, SNERegressor
from sne_plugin.encoder.permute import permute_network
from sne_plugin.regressor import _as_data

FAST = {
    "width": 16,
    "heads": 2,
    "chunk_size": 16,
    "epochs": 12,
    "batch_size": 16,
    "random_state": 0,
}


@pytest.fixture(scope="module")
def fitted(zoo):  # type: ignore[no-untyped-def]
    nets, y = zoo
    return SNERegressor(**FAST).fit(nets[:128], y[:128])


def test_learns_a_weight_property(fitted, zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    pred = fitted.predict(nets[128:])
    tau = kendalltau(pred, y[128:]).statistic
    assert tau > 0.5, tau
    # calibrated, not only ranked: targets span [0.1, 0.9]
    assert np.mean(np.abs(pred - y[128:])) < 0.12
    assert fitted.history_ and fitted.n_epochs_ >= 1
    assert fitted.predict(nets[:5]).min() > 0 and fitted.predict(nets[:5]).max() < 1


def test_sklearn_contracts(fitted, zoo) -> None:  # type: ignore[no-untyped-def]
    assert is_regressor(SNERegressor())
    params = fitted.get_params()
    assert params["width"] == 16 and clone(fitted).get_params() == params
    assert not hasattr(clone(fitted), "module_")
    with pytest.raises(NotFittedError):
        SNERegressor().predict(zoo[0][:2])
    reg = SNERegressor(**FAST)
    assert reg.set_params(epochs=2) is reg and reg.epochs == 2
    assert reg.fit(zoo[0][:16], zoo[1][:16]) is reg
    assert fitted.transform(zoo[0][:3]).shape == (3, 16)
    assert np.isfinite(fitted.score(zoo[0][128:], zoo[1][128:]))


def test_pipeline_gridsearch_and_cross_val(zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    small = {**FAST, "epochs": 2}
    pipe = Pipeline([("sne", SNERegressor(**small))])
    scores = cross_val_score(pipe, nets[:48], y[:48], cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    search = GridSearchCV(SNERegressor(**small), {"lr": [1e-3, 3e-3]}, cv=2).fit(nets[:32], y[:32])
    assert search.best_params_["lr"] in (1e-3, 3e-3)


def test_same_seed_same_predictions(zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    args = {**FAST, "epochs": 3}
    a = SNERegressor(**args).fit(nets[:40], y[:40]).predict(nets[40:60])
    b = SNERegressor(**args).fit(nets[:40], y[:40]).predict(nets[40:60])
    np.testing.assert_array_equal(a, b)
    c = SNERegressor(**{**args, "random_state": 1}).fit(nets[:40], y[:40]).predict(nets[40:60])
    assert not np.array_equal(a, c)


def test_batched_predictions_match_single(fitted, zoo) -> None:  # type: ignore[no-untyped-def]
    nets = zoo[0][128:140]
    together = fitted.predict(nets)
    alone = np.array([fitted.predict([n])[0] for n in nets])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_pickle_and_joblib_round_trips(fitted, zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nets = zoo[0][128:]
    expected = fitted.predict(nets)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict(nets), expected)
    fitted.save(tmp_path / "sne.sne")
    loaded = SNERegressor.load(tmp_path / "sne.sne")
    np.testing.assert_array_equal(loaded.predict(nets), expected)
    joblib.dump(fitted, tmp_path / "plain.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "plain.joblib").predict(nets), expected)


def test_regressor_fitted_on_cuda_loads_on_cpu(fitted, zoo) -> None:  # type: ignore[no-untyped-def]
    # Simulation: the pickle of a CUDA-fitted regressor records device 'cuda'; on a host
    # without CUDA it must load on the CPU and predict the same.
    state = fitted.__getstate__()
    assert all(t.device.type == "cpu" for t in state["module_"].values())
    state["device_"] = "cuda:0"
    clone_ = SNERegressor.__new__(SNERegressor)
    if torch.cuda.is_available():
        pytest.skip("simulation needs a host without CUDA")
    clone_.__setstate__(state)
    assert clone_.device_.type == "cpu"
    np.testing.assert_array_equal(clone_.predict(zoo[0][:8]), fitted.predict(zoo[0][:8]))


def test_incompatible_version_refused(fitted) -> None:  # type: ignore[no-untyped-def]
    state = fitted.__getstate__()
    state["_sne_version"] = "9.4.0"
    with pytest.raises(SNEError, match=r"saved by sne-plugin 9\.4\.0, which is not compatible"):
        SNERegressor.__new__(SNERegressor).__setstate__(state)


def test_partial_fit_and_warm_start(zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    reg = SNERegressor(**FAST)
    reg.partial_fit(nets[:16], y[:16])
    first = reg.n_epochs_
    reg.partial_fit(nets[16:32], y[16:32])
    assert reg.n_epochs_ == first + 1
    warm = SNERegressor(**{**FAST, "epochs": 2, "warm_start": True}).fit(nets[:16], y[:16])
    before = {k: v.clone() for k, v in warm.module_.state_dict().items()}
    warm.fit(nets[:16], y[:16])
    assert warm.n_epochs_ >= 3  # continued, not restarted
    assert any(not torch.equal(before[k], v) for k, v in warm.module_.state_dict().items())


def _sorted_unit_zoo(n: int) -> tuple[list[NetworkWeights], np.ndarray]:
    """MLPs whose hidden units are sorted by scale: a permutation visibly reshuffles chunks."""
    g = torch.Generator().manual_seed(0)
    nets, ys = [], []
    for _ in range(n):
        s = float(torch.rand(1, generator=g)) * 0.9 + 0.1
        rows = torch.linspace(0.05, 1.0, 16)[:, None] * s
        pairs = [
            (torch.randn(16, 8, generator=g) * rows, None),
            (torch.randn(16, 16, generator=g) * rows, None),
            (torch.randn(4, 16, generator=g), None),
        ]
        nets.append(NetworkWeights.from_pairs(pairs))
        ys.append(0.1 + 0.8 * s)
    return nets, np.array(ys)


def test_invariance_regulariser_pulls_f_x_and_f_gx_together() -> None:
    nets, y = _sorted_unit_zoo(160)
    rng = np.random.default_rng(5)
    held_out = nets[128:]
    permuted = [permute_network(n, rng)[0] for n in held_out]

    def relative_gap(weight: float) -> float:
        # without the per-tensor statistics, which are permutation-invariant by themselves
        args = {**FAST, "epochs": 6, "invariance_weight": weight, "tensor_stats": False}
        reg = SNERegressor(**args).fit(nets[:128], y[:128])
        f_x, f_gx = reg.predict(held_out), reg.predict(permuted)
        return float(np.mean((f_x - f_gx) ** 2) / np.var(f_x))

    # measured: 0.027 without the regulariser, 7e-5 with weight 10
    assert relative_gap(10.0) < 0.1 * relative_gap(0.0)


def test_2d_array_rows_are_single_layer_networks() -> None:
    X = np.random.default_rng(0).normal(size=(20, 7))
    reg = SNERegressor(**{**FAST, "epochs": 1, "loss": "mse"}).fit(X, X[:, 0])
    assert reg.predict(X).shape == (20,)


# ----------------------------------------------------------------------------- bad input
def _nan_net() -> NetworkWeights:
    w = torch.randn(4, 3)
    w[1, 2] = float("nan")
    return NetworkWeights.from_pairs([(w, None)], names=["fc1"])


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (
            "nan_in_X",
            [0.5] * 3,
            r"X\[2\] \(<pairs>\): weights contain NaN or inf \(first in layer 'fc1'\)",
        ),
        ("ok", [0.5, float("nan"), 0.5], r"y has 1 NaN/inf targets \(first at index 1\)"),
        ("ok", [0.5, 0.5], r"X has 3 networks but y has 2 targets"),
        ("ok", None, r"requires y to be passed, but the target y is None"),
        ("string", [0.5], r"expected a list of networks \(one item per network\), got str"),
        ("empty", [], r"expected at least one network in X"),
    ],
)
def test_fit_bad_input(X, y, message) -> None:  # type: ignore[no-untyped-def]
    ok = [NetworkWeights.from_pairs([(torch.randn(4, 3), None)]) for _ in range(3)]
    inputs = {"nan_in_X": [*ok[:2], _nan_net()], "ok": ok, "string": "model.onnx", "empty": []}
    with pytest.raises(SNEError, match=message):
        SNERegressor(epochs=1).fit(inputs[X], y)


def test_bce_needs_targets_in_unit_interval() -> None:
    nets = [NetworkWeights.from_pairs([(torch.randn(4, 3), None)]) for _ in range(3)]
    with pytest.raises(SNEError, match=r"loss='bce' needs targets in \[0, 1\].*use loss='mse'"):
        SNERegressor(epochs=1, loss="bce").fit(nets, [0.5, 1.5, 0.2])


@pytest.mark.parametrize(("scale", "loss"), [(1.0, "bce"), (10.0, "mse")])
def test_auto_loss_picks_bce_inside_unit_interval_else_mse(  # type: ignore[no-untyped-def]
    zoo, scale: float, loss: str
) -> None:
    nets, y = zoo
    reg = SNERegressor(**{**FAST, "epochs": 1}).fit(nets[:16], y[:16] * scale)
    assert reg.loss == "auto" and reg.loss_ == loss
    pred = reg.predict(nets[:16])
    assert bool(pred.max() > 1) == (loss == "mse")  # mse targets reach 9; bce is a sigmoid


def test_resolved_loss_is_kept_by_partial_fit_and_pickle(zoo) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    reg = SNERegressor(**FAST).partial_fit(nets[:16], y[:16])
    assert reg.loss_ == "bce"
    with pytest.raises(SNEError, match=r"loss='bce' needs targets in \[0, 1\]"):
        reg.partial_fit(nets[16:32], y[16:32] * 10)  # auto does not switch to mse mid-way
    assert pickle.loads(pickle.dumps(reg)).loss_ == "bce"


def test_predict_nan_names_the_network(fitted) -> None:  # type: ignore[no-untyped-def]
    good = NetworkWeights.from_pairs([(torch.randn(4, 3), None)])
    with pytest.raises(SNEError, match=r"X\[1\] .*NaN or inf"):
        fitted.predict([good, _nan_net()])


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        (
            "loss",
            "hinge",
            r"expected loss to be one of \('auto', 'bce', 'mse', 'pairwise'\), "
            r"but got loss='hinge'",
        ),
        ("width", 0, r"width must be a positive integer, but got width=0"),
        ("heads", 3, r"width must be a multiple of heads, but got width=16, heads=3"),
        ("validation_fraction", 1.0, r"validation_fraction must be in \[0, 1\)"),
    ],
)
def test_bad_parameters(param, value, message, zoo) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SNEError, match=message):
        SNERegressor(**{param: value}).fit(zoo[0][:4], zoo[1][:4])


def test_load_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # more in test_persist.py
    with pytest.raises(SNEError, match=r"does not exist"):
        SNERegressor.load(tmp_path / "missing.sne")
    joblib.dump({"not": "a regressor"}, tmp_path / "dict.joblib")
    with pytest.raises(SNEError, match=r"dict\.joblib' is a pickle or joblib file"):
        SNERegressor.load(tmp_path / "dict.joblib")
    (tmp_path / "junk.sne").write_bytes(b"\x00junk")
    with pytest.raises(SNEError, match=r"is not a zip/npz archive"):
        SNERegressor.load(tmp_path / "junk.sne")


@pytest.mark.parametrize(("validation_fraction", "shows_tau"), [(0.25, True), (0.0, False)])
def test_progress_bar_shows_tau_only_with_a_validation_split(  # type: ignore[no-untyped-def]
    zoo, capsys, validation_fraction: float, shows_tau: bool
) -> None:
    X, y = zoo
    SNERegressor(
        width=8, heads=1, epochs=2, validation_fraction=validation_fraction, verbose=True,
        random_state=0,
    ).fit(X[:16], y[:16])  # fmt: skip
    err = capsys.readouterr().err
    assert "SNE fit" in err and "loss=" in err
    assert ("val_tau=" in err) is shows_tau


def test_enough_validation_networks_set_the_standardisation_statistics() -> None:
    """With 64 or more validation networks, the embeddings of the validation split at the best
    epoch give the standardisation statistics (no pass over training networks); fewer, and
    the training networks do."""
    from sne_plugin.testing import scaled_cnn_zoo

    nets, y = scaled_cnn_zoo(440, seed=3)
    reg = SNERegressor(width=8, heads=1, epochs=1, random_state=0, verbose=False).fit(nets, y)
    val = reg._val_idx
    assert len(val) == 66
    data = _as_data(nets)
    with torch.inference_mode():
        encoded = reg.module_.encoder(*reg._batch(data.subset(val))).float()
        trained = reg.module_.encoder(*reg._batch(data.subset(np.setdiff1d(range(440), val))))
    standardize = reg.module_.standardize
    torch.testing.assert_close(standardize.mean, encoded.mean(0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        standardize.var, encoded.var(0, unbiased=False), rtol=1e-4, atol=1e-7
    )
    assert not torch.allclose(standardize.mean, trained.mean(0), rtol=1e-4, atol=1e-6)
    small = SNERegressor(width=8, heads=1, epochs=1, random_state=0, verbose=False)
    small.fit(nets[:100], y[:100])  # 15 validation networks: the training networks' statistics
    with torch.inference_mode():
        rest = np.setdiff1d(range(100), small._val_idx)
        encoded = small.module_.encoder(*small._batch(_as_data(nets[:100]).subset(rest))).float()
    torch.testing.assert_close(
        small.module_.standardize.mean, encoded.mean(0), rtol=1e-4, atol=1e-6
    )
