"""scikit-learn contracts of the baselines, run on lists of networks."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sne_plugin.readers import read_many

NAMES = ["statnn", "flat_mlp", "deepsets"]


@pytest.fixture(scope="module")
def small_zoo(zoo_one):
    nets, y = zoo_one
    return nets[:60], y[:60]


@pytest.fixture(scope="module")
def fitted(fast, small_zoo):
    nets, y = small_zoo
    return {name: fast[name]().fit(nets, y) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_is_regressor_and_clone_keeps_params(name, fast):
    model = fast[name]()
    assert is_regressor(model)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.set_params(random_state=7) is copy
    assert copy.get_params()["random_state"] == 7


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_raises_not_fitted(name, fast, small_zoo):
    with pytest.raises(NotFittedError):
        fast[name]().predict(small_zoo[0])


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_float_predictions(name, fast, small_zoo):
    model = fast[name]()
    assert model.fit(*small_zoo) is model
    pred = model.predict(small_zoo[0][:5])
    assert pred.dtype == np.float64 and pred.shape == (5,)
    assert isinstance(model.score(*small_zoo), float)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_predictions(name, fast, fitted, small_zoo):
    again = fast[name]().fit(*small_zoo)
    np.testing.assert_array_equal(again.predict(small_zoo[0]), fitted[name].predict(small_zoo[0]))


@pytest.mark.parametrize("name", ["flat_mlp", "deepsets"])
def test_other_seed_other_model(name, fast, fitted, small_zoo):
    other = fast[name]().set_params(random_state=1).fit(*small_zoo)
    assert not np.array_equal(other.predict(small_zoo[0]), fitted[name].predict(small_zoo[0]))


@pytest.mark.parametrize("name", NAMES)
def test_pickle_and_joblib_round_trip(name, fitted, small_zoo, tmp_path):
    model = fitted[name]
    expected = model.predict(small_zoo[0])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(small_zoo[0]), expected)
    joblib.dump(model, tmp_path / "model.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "model.joblib").predict(small_zoo[0]), expected
    )


@pytest.mark.parametrize("name", NAMES)
def test_pipeline_and_cross_val_score_with_lists(name, fast, small_zoo):
    nets, y = small_zoo
    raw = [[(layer.weight, layer.bias) for layer in net] for net in nets]
    pipe = Pipeline([("read", FunctionTransformer(read_many)), ("model", fast[name]())])
    scores = cross_val_score(pipe, raw, list(y), cv=KFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_torch_state_is_kept_on_cpu(fitted):
    for name in ("flat_mlp", "deepsets"):
        devices = {p.device.type for p in fitted[name].module_.state_dict().values()}
        assert devices == {"cpu"}
