"""Device out of memory during fit or predict, simulated on the CPU: the encoder raises the
error a GPU raises whenever a pass holds more than a set number of chunks or networks (there
is no GPU here, so a simulation is the honest test). The regressor retries with smaller
passes, warns once, and ends with the results of a run that never ran out of memory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sne_plugin import SNERegressor
from sne_plugin._device import is_out_of_memory
from sne_plugin.encoder.model import SNEEncoder
from sne_plugin.errors import SNEError
from sne_plugin.testing import scaled_cnn_zoo

PARAMS = dict(width=16, heads=2, chunk_size=8, max_set=16, epochs=2, device="cpu", verbose=False)


@pytest.fixture(scope="module")
def zoo():
    return scaled_cnn_zoo(12, seed=3)


def _limit_memory(monkeypatch: pytest.MonkeyPatch, chunks: int, networks: int, kind: str) -> dict:
    """Make the encoder raise ``kind`` of out-of-memory error on a pass of more than
    ``chunks`` chunks, or at inference on a batch of more than ``networks`` networks (a
    training step cannot drop networks from its minibatch: it runs in smaller passes);
    counts the raises."""
    raised = {"chunks": 0, "networks": 0}

    def oom(what: str) -> Exception:
        raised[what] += 1
        if kind == "OutOfMemoryError":
            return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return RuntimeError("CUDA error: out of memory")

    set_forward, forward = SNEEncoder._set_forward, SNEEncoder.forward

    def limited_set_forward(self, p, flat, batch):
        if p.chunk_hi - p.chunk_lo > chunks:
            raise oom("chunks")
        return set_forward(self, p, flat, batch)

    def limited_forward(self, batch, flat):
        if batch.n_networks > networks and not torch.is_grad_enabled():
            raise oom("networks")
        return forward(self, batch, flat)

    monkeypatch.setattr(SNEEncoder, "_set_forward", limited_set_forward)
    monkeypatch.setattr(SNEEncoder, "forward", limited_forward)
    return raised


@pytest.fixture(scope="module")
def reference(zoo):
    nets, y = zoo
    model = SNERegressor(**PARAMS, random_state=0).fit(nets, y)
    return model, model.predict(nets)


@pytest.mark.parametrize("kind", ["OutOfMemoryError", "RuntimeError"])
def test_fit_and_predict_retry_smaller_and_match_the_run_without_oom(
    zoo, reference, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    nets, y = zoo
    expected_model, expected = reference
    raised = _limit_memory(monkeypatch, chunks=100, networks=5, kind=kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = SNERegressor(**PARAMS, random_state=0).fit(nets, y)
        got = model.predict(nets)
    assert raised["chunks"] > 0 and raised["networks"] > 0, raised  # both limits were hit
    oom = [w for w in caught if "out of memory" in str(w.message)]
    assert len(oom) == 1, [str(w.message) for w in oom]  # told once
    assert "retrying with" in str(oom[0].message)
    assert model.module_.encoder.max_chunks_per_pass <= 100
    # Smaller passes pad differently, so float sums round differently, and Adam scales tiny
    # gradients up: the same up to that (measured here: predictions within 3.2e-6, every
    # parameter within 6.4e-4 after 2 epochs; 1.6e-3 on 16 networks).
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    mine, theirs = model.module_.state_dict(), expected_model.module_.state_dict()
    worst = max(float((mine[k] - theirs[k]).abs().max()) for k in mine)
    assert worst < 5e-3, f"largest parameter difference {worst:.2e}"


def test_predict_alone_retries(zoo, reference, monkeypatch: pytest.MonkeyPatch) -> None:
    nets, _ = zoo
    model, expected = reference
    _limit_memory(monkeypatch, chunks=10**9, networks=3, kind="OutOfMemoryError")
    with pytest.warns(RuntimeWarning, match=r"out of memory on cpu in prediction .* retrying"):
        got = SNERegressor.__new__(SNERegressor)
        got.__setstate__(model.__getstate__())
        out = got.predict(nets)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_out_of_memory_at_the_smallest_pass_is_an_sne_error(
    zoo, monkeypatch: pytest.MonkeyPatch
) -> None:
    nets, y = zoo
    _limit_memory(monkeypatch, chunks=0, networks=10**9, kind="OutOfMemoryError")
    with (
        pytest.warns(RuntimeWarning, match="retrying"),
        pytest.raises(SNEError, match=r"even with 1 network and 1 chunk per pass \(tried, in turn"),
    ):
        SNERegressor(**PARAMS, random_state=0).fit(nets, y)


def test_other_errors_are_not_taken_for_out_of_memory() -> None:
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(MemoryError("out of memory"))
