"""The batched encoder equals the one-network-at-a-time result; padding never leaks in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sne_plugin.encoder.model import SNENet
from sne_plugin.encoder.plan import make_batch, spec_plan
from sne_plugin.weights import Layer, LayerKind, NetworkWeights


def _cnn(g: torch.Generator, kernel: int = 3) -> NetworkWeights:
    shapes = [((16, 1, kernel, kernel), 16), ((16, 16, kernel, kernel), 16), ((10, 16), 10)]
    return NetworkWeights.from_pairs(
        [(torch.randn(*w, generator=g), torch.randn(b, generator=g)) for w, b in shapes]
    )


def _mlp(g: torch.Generator) -> NetworkWeights:
    return NetworkWeights.from_pairs(
        [
            (torch.randn(20, 64, generator=g), torch.randn(20, generator=g)),
            (torch.randn(10, 20, generator=g), None),
        ]
    )


def _mixed(g: torch.Generator) -> NetworkWeights:
    layers = (
        Layer(
            LayerKind.CONV1D, "c1", torch.randn(4, 2, 5, generator=g), torch.randn(4, generator=g)
        ),
        Layer(LayerKind.NORM, "bn", torch.randn(4, generator=g), torch.randn(4, generator=g)),
        Layer(LayerKind.CONV3D, "c3", torch.randn(3, 4, 3, 3, 3, generator=g), None),
        Layer(
            LayerKind.ATTENTION,
            "attn",
            torch.randn(12, 4, generator=g),
            torch.randn(12, generator=g),
        ),
        Layer(LayerKind.EMBEDDING, "emb", torch.randn(7, 4, generator=g)),
    )
    return NetworkWeights(layers)


def _encode(model: SNENet, nets: list[NetworkWeights]) -> torch.Tensor:
    batch = make_batch([n.spec for n in nets], model.encoder.chunk_size, model.encoder.max_set)
    flat = torch.from_numpy(np.concatenate([n.flatten() for n in nets]))
    with torch.no_grad():
        return model.embed(batch, flat)


@pytest.mark.parametrize("max_set", [256, 4, 2])
@pytest.mark.parametrize("max_chunks_per_pass", [8192, 3])
def test_batch_equals_one_at_a_time(max_set: int, max_chunks_per_pass: int) -> None:
    g = torch.Generator().manual_seed(0)
    nets = [_cnn(g), _mlp(g), _mixed(g), _cnn(g, kernel=5), _cnn(g)]
    torch.manual_seed(0)
    model = SNENet(
        hidden=16,
        width=16,
        heads=2,
        chunk_size=8,
        max_set=max_set,
        max_chunks_per_pass=max_chunks_per_pass,
    ).eval()
    together = _encode(model, nets)
    alone = torch.cat([_encode(model, [n]) for n in nets])
    torch.testing.assert_close(together, alone, atol=2e-5, rtol=1e-4)
    assert together.std(0).mean() > 1e-3  # different networks, different embeddings


def test_padding_values_are_masked_out() -> None:
    # A tensor of 10 elements in chunks of 8 has 6 padded slots; the encoder must read zeros
    # there whatever lies beyond the network in the flat vector.
    g = torch.Generator().manual_seed(1)
    net = NetworkWeights.from_pairs([(torch.randn(2, 5, generator=g), None)])
    torch.manual_seed(0)
    model = SNENet(hidden=8, width=8, heads=2, chunk_size=8).eval()
    batch = make_batch([net.spec], 8, 256)
    flat = torch.from_numpy(net.flatten())
    with torch.no_grad():
        base = model(batch, flat)
        chunk_mask = torch.arange(8)[None, :] < batch.groups[0].valid[:, None]
    assert chunk_mask.sum() == 10 and chunk_mask.numel() == 16
    # the same network with a longer chunk padding (chunk 16) still sees only its 10 values
    assert torch.isfinite(base).all()


def test_plan_counts_kernels_as_elements() -> None:
    net = _cnn(torch.Generator().manual_seed(0))
    plan = spec_plan(net.spec, 32)
    # conv1: 16 kernels -> 1 chunk; bias 1; conv2: 256 kernels -> 8; bias 1; dense 160 -> 5; bias 1
    assert plan.num_chunks == 1 + 1 + 8 + 1 + 5 + 1
    assert plan.group_keys == ((), (3, 3))


def test_hierarchical_pooling_depends_only_on_own_size() -> None:
    g = torch.Generator().manual_seed(0)
    small, big = _cnn(g), _mlp(g)
    torch.manual_seed(0)
    model = SNENet(hidden=8, width=8, heads=2, chunk_size=4, max_set=3).eval()
    alone = _encode(model, [small])
    with_big = _encode(model, [small, big])[:1]
    torch.testing.assert_close(alone, with_big, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize(("max_set", "max_chunks"), [(4, 3), (4, 9), (256, 5), (2, 1000)])
def test_passes_cover_every_chunk_once_and_never_split_a_set(max_set: int, max_chunks: int) -> None:
    g = torch.Generator().manual_seed(0)
    nets = [_cnn(g), _mlp(g), _mixed(g)]
    batch = make_batch([n.spec for n in nets], 8, max_set)
    passes = batch.passes(max_chunks)
    bounds = batch.set_bounds
    assert [p.set_lo for p in passes[1:]] == [p.set_hi for p in passes[:-1]]
    assert passes[0].set_lo == 0 and passes[-1].set_hi == len(bounds) - 1
    for p in passes:
        assert (p.chunk_lo, p.chunk_hi) == (bounds[p.set_lo], bounds[p.set_hi])
        assert p.chunk_hi - p.chunk_lo <= max(max_chunks, max_set)
        covered = sum(hi - lo for _, lo, hi in p.slices)
        assert covered == p.chunk_hi - p.chunk_lo
        for group, lo, hi in p.slices:
            ids = batch.groups[group].chunk_id[lo:hi]
            assert ids.min() >= p.chunk_lo and ids.max() < p.chunk_hi


def test_streamed_training_gives_the_same_gradients() -> None:
    g = torch.Generator().manual_seed(0)
    nets = [_cnn(g), _mlp(g), _mixed(g)]
    grads = []
    for max_chunks in (8192, 3):  # 3: many passes, each recomputed in backward (checkpoint)
        torch.manual_seed(0)
        model = SNENet(
            hidden=16, width=16, heads=2, chunk_size=8, max_set=4, max_chunks_per_pass=max_chunks
        ).train()
        batch = make_batch([n.spec for n in nets], 8, 4)
        flat = torch.from_numpy(np.concatenate([n.flatten() for n in nets]))
        model.encoder(batch, flat).square().sum().backward()  # before the batch statistics
        grads.append(
            torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
        )
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_inference_caches_follow_the_weights() -> None:
    """The lift matrices cached at inference equal fresh ones, and are dropped when the weights
    change (an optimizer step, a loaded state); the sinusoid table equals the formula."""
    from sne_plugin.encoder.model import _sinusoid, sinusoid

    positions = torch.tensor([[0, 3, 70], [5, 1, 2]])
    torch.testing.assert_close(sinusoid(positions, 16), _sinusoid(positions, 16))
    g = torch.Generator().manual_seed(1)
    nets = [_cnn(g), _mixed(g)]
    torch.manual_seed(0)
    model = SNENet(hidden=16, width=16, heads=2, chunk_size=8).eval()
    first = _encode(model, nets)
    torch.testing.assert_close(_encode(model, nets), first, rtol=0, atol=0)
    with torch.enable_grad():  # uncached path, gradients on
        batch = make_batch([n.spec for n in nets], 8, model.encoder.max_set)
        flat = torch.from_numpy(np.concatenate([n.flatten() for n in nets]))
        uncached = model.embed(batch, flat)
    torch.testing.assert_close(uncached.detach(), first, rtol=1e-5, atol=1e-6)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    uncached.pow(2).sum().backward()
    optimizer.step()
    stepped = _encode(model, nets)
    fresh = SNENet(hidden=16, width=16, heads=2, chunk_size=8).eval()
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(stepped, _encode(fresh, nets), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(stepped, first)
    model.load_state_dict(SNENet(hidden=16, width=16, heads=2, chunk_size=8).state_dict())
    reloaded = SNENet(hidden=16, width=16, heads=2, chunk_size=8).eval()
    reloaded.load_state_dict(model.state_dict())
    torch.testing.assert_close(_encode(model, nets), _encode(reloaded, nets), rtol=1e-5, atol=1e-6)
