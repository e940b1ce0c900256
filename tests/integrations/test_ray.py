"""SNEStopper and predict_final in a real local Ray Tune run."""

from __future__ import annotations

from pathlib import Path

import pytest

tune = pytest.importorskip("ray.tune")

from sne_plugin.integrations.ray import SNEStopper  # noqa: E402
from sne_plugin.testing.ray import ITERATIONS, first_weight_trainable  # noqa: E402

FIRST_WEIGHTS = [0.9, -0.9, 0.8]  # the second is stopped when it reaches iteration 1


@pytest.mark.slow
def test_stops_the_trial_predicted_worst(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        stopper = SNEStopper(percentile=50, n_warmup_steps=1, n_min_trials=2)
        tuner = tune.Tuner(
            first_weight_trainable,
            param_space={"w0": tune.grid_search(FIRST_WEIGHTS)},
            tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(tmp_path), stop=stopper, verbose=0),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    iterations = {r.config["w0"]: r.metrics["training_iteration"] for r in results}
    assert iterations[-0.9] == 1  # stopped at its first iteration past the warm-up
    assert iterations[0.9] == iterations[0.8] == ITERATIONS
    assert list(stopper.stopped.values()) == [1]


def test_stopper_rule_and_arguments() -> None:
    stopper = SNEStopper(mode="min", percentile=50, n_warmup_steps=0, n_min_trials=2)
    assert stopper("a", {"training_iteration": 0, "sne_prediction": 0.1}) is False
    assert stopper("b", {"training_iteration": 0, "sne_prediction": 0.9}) is True
    assert stopper("c", {"training_iteration": 0}) is False  # nothing predicted
    assert stopper.stopped == {"b": 0} and stopper.stop_all() is False
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        SNEStopper(mode="up")
    with pytest.raises(ValueError, match="percentile must be in"):
        SNEStopper(percentile=120)


def test_stopped_trials_stay_peers() -> None:
    stopper = SNEStopper(percentile=50, n_warmup_steps=1, n_min_trials=2)
    assert stopper("a", {"training_iteration": 1, "sne_prediction": 0.9}) is False
    assert stopper("b", {"training_iteration": 1, "sne_prediction": -0.9}) is True
    assert stopper("c", {"training_iteration": 1, "sne_prediction": 0.8}) is False
    assert stopper("a", {"training_iteration": 2, "sne_prediction": 0.9}) is False
    # at iteration 2: a (0.9) and c, and b at its last prediction (-0.9): c is the median
    assert stopper("c", {"training_iteration": 2, "sne_prediction": 0.8}) is False
