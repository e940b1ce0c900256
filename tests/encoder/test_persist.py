"""The pickle-free save format: exact round trips, every bad file an SNEError, no unpickling."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from sne_plugin import SNEError, SNERegressor
from sne_plugin._persist import FITTED, undeclared

SMALL = {"width": 16, "heads": 1, "chunk_size": 16, "epochs": 3, "batch_size": 16}


@pytest.fixture(scope="module")
def plain(zoo):  # type: ignore[no-untyped-def]
    nets, y = zoo
    return SNERegressor(**SMALL, validation_fraction=0.25, random_state=0).fit(nets[:48], y[:48])


@pytest.fixture(scope="module")
def with_side(zoo):  # type: ignore[no-untyped-def]
    nets, y = zoo
    side = {"val_acc": y[:48] + 0.01, "step": np.arange(48.0)}
    reg = SNERegressor(**SMALL, loss="mse", random_state=np.random.RandomState(3))
    return reg.fit(nets[:48], y[:48], side=side)


@pytest.fixture(scope="module")
def saved(plain, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("persist") / "plain.sne"
    plain.save(path)
    return path


def test_round_trip_without_side_inputs(plain, saved, zoo) -> None:  # type: ignore[no-untyped-def]
    nets = zoo[0]
    loaded = SNERegressor.load(saved)
    np.testing.assert_array_equal(loaded.predict(nets[48:80]), plain.predict(nets[48:80]))
    np.testing.assert_array_equal(loaded.transform(nets[:4]), plain.transform(nets[:4]))
    assert loaded.get_params() == plain.get_params()
    for item in FITTED:
        if item.kind in ("float", "int", "str", "history"):
            assert repr(getattr(loaded, item.name)) == repr(getattr(plain, item.name)), item.name
    assert loaded.best_val_tau_ == plain.best_val_tau_


def test_round_trip_with_side_inputs(with_side, zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    with_side.save(tmp_path / "side.sne")
    loaded = SNERegressor.load(tmp_path / "side.sne")
    side = {"val_acc": y[48:80], "step": np.full(32, 5.0)}
    np.testing.assert_array_equal(
        loaded.predict(nets[48:80], side=side), with_side.predict(nets[48:80], side=side)
    )
    assert loaded.side_.names == ("val_acc", "step")
    np.testing.assert_array_equal(loaded.side_.mean, with_side.side_.mean)
    assert loaded.loss_ == "mse" and (loaded.y_mean_, loaded.y_std_) == (
        with_side.y_mean_,
        with_side.y_std_,
    )
    # a RandomState parameter comes back in the same state
    assert loaded.random_state.randint(10**9) == with_side.random_state.randint(10**9)


def test_training_continues_identically_after_load(zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # optimizer moments and the random generator are saved too: partial_fit after a load
    # takes the same steps as partial_fit on the original
    nets, y = zoo
    a = SNERegressor(**SMALL, random_state=1).partial_fit(nets[:32], y[:32])
    a.save(tmp_path / "a.sne")
    b = SNERegressor.load(tmp_path / "a.sne")
    a.partial_fit(nets[:32], y[:32])
    b.partial_fit(nets[:32], y[:32])
    np.testing.assert_array_equal(a.predict(nets[32:48]), b.predict(nets[32:48]))
    assert repr(a.history_) == repr(b.history_)  # NaN != NaN: compared as text


def test_every_fitted_attribute_is_declared(plain, with_side) -> None:  # type: ignore[no-untyped-def]
    assert undeclared(plain) == [] and undeclared(with_side) == []


def test_an_undeclared_fitted_attribute_stops_save(zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    reg = SNERegressor(**{**SMALL, "epochs": 1}, random_state=0).fit(nets[:16], y[:16])
    reg.new_thing_ = 3
    with pytest.raises(SNEError, match=r"\['new_thing_'\] are not declared in .*FITTED"):
        reg.save(tmp_path / "x.sne")
    assert not (tmp_path / "x.sne").exists()


def _rewrite(
    src: Path,
    dst: Path,
    config: Callable[[dict[str, Any]], None] | None = None,
    arrays: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> Path:
    """A copy of the saved file ``src`` with its config and/or arrays changed."""
    with np.load(src, allow_pickle=False) as archive:
        content = {name: archive[name] for name in archive.files}
    if config is not None:
        cfg = json.loads(content["__sne_config__"].tobytes())
        config(cfg)
        content["__sne_config__"] = np.frombuffer(json.dumps(cfg).encode(), np.uint8)
    if arrays is not None:
        arrays(content)
    with open(dst, "wb") as handle:
        np.savez(handle, **content)
    return dst


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(cfg: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        for part in parents:
            cfg = cfg[part]
        if value is _DELETE:
            del cfg[leaf]
        else:
            cfg[leaf] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("sne_plugin_version", "9.4.0"), r"'sne_plugin_version'.*by sne-plugin 9\.4"),
        (_set("sne_plugin_version", _DELETE), r"lacks key 'sne_plugin_version'"),
        (_set("format", "other"), r"key 'format': expected 'sne-plugin/SNERegressor'"),
        (_set("format_version", 7), r"key 'format_version': expected 1, got 7"),
        (_set("fitted.loss_", _DELETE), r"lacks key 'fitted.loss_'"),
        (_set("fitted.weight_scale_", "big"), r"key 'fitted.weight_scale_': expected a number"),
        (_set("fitted.n_epochs_", -1), r"key 'fitted.n_epochs_': expected an int"),
        (_set("fitted.device_", "tpu:x"), r"key 'fitted.device_': expected a device name"),
        (_set("fitted.side_", {"mean": [0.0], "scale": [0.0], "names": None}), r"side_.*positive"),
        (_set("fitted._rng", [1, 2]), r"key 'fitted._rng': expected a random state"),
        (_set("fitted.history_", [{"loss": "x"}]), r"key 'fitted.history_'"),
        (_set("params.nonsense", 1), r"key 'params':.*nonsense"),
        (_set("params", _DELETE), r"lacks key 'params'"),
        (_set("optimizer", _DELETE), r"lacks key 'optimizer'"),
        (_set("optimizer.state", {"999": []}), r"optimizer state keys 0 to"),
    ],
)
def test_bad_config_names_file_and_key(saved, tmp_path, change, message) -> None:  # type: ignore[no-untyped-def]
    bad = _rewrite(saved, tmp_path / "bad.sne", config=change)
    with pytest.raises(SNEError, match=message) as info:
        SNERegressor.load(bad)
    assert str(bad) in str(info.value)


def _drop(key: str) -> Callable[[dict[str, np.ndarray]], None]:
    return lambda content: content.pop(key)


def _reshape(key: str) -> Callable[[dict[str, np.ndarray]], None]:
    def change(content: dict[str, np.ndarray]) -> None:
        content[key] = np.zeros((3, 3, 3), np.float32)

    return change


def _first(saved: Path, prefix: str, suffix: str = "") -> str:
    with np.load(saved) as archive:
        return next(k for k in archive.files if k.startswith(prefix) and k.endswith(suffix))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda key: _drop(key), r"the archive lacks key '{key}'"),
        (lambda key: _reshape(key), r"key '{key}': expected shape"),
    ],
)
@pytest.mark.parametrize("prefix", ["module.", "optimizer."])
def test_bad_arrays_name_file_and_key(saved, tmp_path, make, message, prefix) -> None:  # type: ignore[no-untyped-def]
    key = _first(saved, prefix, ".exp_avg" if prefix == "optimizer." else "")
    bad = _rewrite(saved, tmp_path / "bad.sne", arrays=make(key))
    expected = message.format(key=key.replace(".", r"\."))
    if prefix == "optimizer." and "shape" in message:
        expected = expected.replace("expected shape", "expected a scalar or shape")
    with pytest.raises(SNEError, match=expected) as info:
        SNERegressor.load(bad)
    assert str(bad) in str(info.value)


def test_extra_module_key_is_refused(saved, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def add(content: dict[str, np.ndarray]) -> None:
        content["module.extra.weight"] = np.ones(2, np.float32)

    bad = _rewrite(saved, tmp_path / "bad.sne", arrays=add)
    with pytest.raises(SNEError, match=r"unexpected key 'module\.extra\.weight'"):
        SNERegressor.load(bad)


def test_a_weights_npz_is_not_a_regressor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.ones((2, 3))})
    with pytest.raises(SNEError, match=r"w\.npz.*has no key '__sne_config__'"):
        SNERegressor.load(tmp_path / "w.npz")


def test_junk_and_truncated_files(saved, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "junk.sne").write_bytes(b"\x00junk")
    with pytest.raises(SNEError, match=r"junk\.sne' is not a zip/npz archive"):
        SNERegressor.load(tmp_path / "junk.sne")
    data = saved.read_bytes()
    (tmp_path / "cut.sne").write_bytes(data[: len(data) // 2])
    with pytest.raises(SNEError, match=r"cut\.sne' is not a readable saved SNERegressor"):
        SNERegressor.load(tmp_path / "cut.sne")
    with pytest.raises(SNEError, match=r"does not exist"):
        SNERegressor.load(tmp_path / "missing.sne")


class _Payload:
    """Unpickling this touches a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "joblib", "joblib-zlib", "joblib-gzip"])
def test_pickles_are_refused_and_not_run(tmp_path, writer) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    path = tmp_path / "evil.joblib"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        compress = {"joblib": 0, "joblib-zlib": ("zlib", 3), "joblib-gzip": ("gzip", 3)}[writer]
        joblib.dump(_Payload(marker), path, compress=compress)
    assert not marker.exists()
    with pytest.raises(SNEError, match=r"unpickling a file can run any code.*trusted sources only"):
        SNERegressor.load(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes()) if writer == "pickle" else joblib.load(path)
    assert marker.exists()  # the payload is real: it runs when unpickled


def test_a_pickle_inside_a_zip_is_not_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # an npz whose member is a pickled object array: np.load(allow_pickle=False) refuses it
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "evil.sne", "w") as archive:
        archive.writestr("__sne_config__.npy", buffer.getvalue())
    with pytest.raises(SNEError, match=r"evil\.sne' is not a readable saved SNERegressor"):
        SNERegressor.load(tmp_path / "evil.sne")
    assert not marker.exists()


def test_joblib_and_pickle_of_the_estimator_still_work(plain, zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nets = zoo[0][48:64]
    joblib.dump(plain, tmp_path / "trusted.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "trusted.joblib").predict(nets), plain.predict(nets)
    )
    again = pickle.loads(pickle.dumps(plain))
    np.testing.assert_array_equal(again.predict(nets), plain.predict(nets))


def test_a_deflated_bomb_inside_a_saved_file_is_refused(saved, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with np.load(saved, allow_pickle=False) as archive:
        content = {name: archive[name] for name in archive.files}
    content["module.zeros"] = np.zeros((8000, 8000), np.float32)  # 256 MB, deflated to 250 KB
    np.savez_compressed(tmp_path / "bomb.npz", **content)
    with pytest.raises(SNEError, match=r"bomb\.npz: this \.npz archive .* cap of 100x"):
        SNERegressor.load(tmp_path / "bomb.npz")


def test_numpy_scalar_parameters_are_saved_as_numbers(zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nets, y = zoo
    params = {**SMALL, "epochs": np.int64(1), "lr": np.float64(0.003)}
    reg = SNERegressor(**params, random_state=0).fit(nets[:16], y[:16])
    reg.save(tmp_path / "np.sne")
    loaded = SNERegressor.load(tmp_path / "np.sne")
    assert (loaded.epochs, loaded.lr) == (1, 0.003)
    np.testing.assert_array_equal(loaded.predict(nets[:4]), reg.predict(nets[:4]))


def test_a_file_saved_on_cuda_loads_on_a_cpu_host(plain, saved, zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # simulation: the file records device 'cuda:0' (tensors are always stored from the CPU)
    import torch

    if torch.cuda.is_available():
        pytest.skip("simulation needs a host without CUDA")
    moved = _rewrite(saved, tmp_path / "cuda.sne", config=_set("fitted.device_", "cuda:0"))
    loaded = SNERegressor.load(moved)
    assert loaded.device_.type == "cpu"
    np.testing.assert_array_equal(loaded.predict(zoo[0][:8]), plain.predict(zoo[0][:8]))
