"""State dicts, checkpoints and lists of arrays, with property tests over shapes and dtypes."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sne_plugin.readers import read_weights
from sne_plugin.weights import LayerKind

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64]


@st.composite
def layer_shapes(draw: st.DrawFn) -> list[tuple[int, ...]]:
    n = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 6), min_size=n + 1, max_size=n + 1))
    kernels = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return [(widths[i + 1], widths[i], *([2] * kernels[i])) for i in range(n)]


@settings(max_examples=40, deadline=None)
@given(
    shapes=layer_shapes(),
    dtype=st.sampled_from(DTYPES),
    with_bias=st.booleans(),
    seed=st.integers(0, 99),
)
def test_pairs_and_state_dicts_round_trip(shapes, dtype, with_bias: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pairs = [
        (
            (rng.standard_normal(s) * 10).astype(dtype),
            (rng.standard_normal(s[0]) * 10).astype(dtype) if with_bias else None,
        )
        for s in shapes
    ]
    state = OrderedDict()
    for i, (w, b) in enumerate(pairs):
        state[f"l{i}.weight"] = w
        if b is not None:
            state[f"l{i}.bias"] = b
    for net in (
        read_weights(pairs),
        read_weights(state),
        read_weights([a for p in pairs for a in p if a is not None]),
    ):
        assert [s.weight_shape for s in net.spec.layers] == shapes
        assert [s.kind for s in net.spec.layers] == [
            LayerKind(["dense", "conv1d", "conv2d", "conv3d"][len(s) - 2]) for s in shapes
        ]
        for layer, (w, b) in zip(net, pairs, strict=True):
            assert layer.weight.is_floating_point()
            np.testing.assert_array_equal(
                layer.weight.numpy(), w.astype(layer.weight.numpy().dtype)
            )
            assert (layer.bias is None) == (b is None)
    assert read_weights(pairs).is_chain
    assert read_weights(state).is_chain == _chains(shapes)


def _chains(shapes: list[tuple[int, ...]]) -> bool:
    for before, after in itertools.pairwise(shapes):
        conv_to_dense = len(before) > 2 and len(after) == 2
        if after[1] != before[0] and not (conv_to_dense and after[1] % before[0] == 0):
            return False
    return True


def test_norm_attention_and_ignored_buffers() -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.MultiheadAttention(4, 1)
    )
    net = read_weights(model.state_dict())
    assert [(s.kind.value, s.name) for s in net.spec.layers] == [
        ("dense", "0"),
        ("norm", "1"),
        ("attention", "2.in_proj"),
        ("attention", "2.out_proj"),
    ]
    assert [(s.kind.value, s.name) for s in read_weights(model).spec.layers] == [
        (s.kind.value, s.name) for s in net.spec.layers
    ]
    assert not net.is_chain


def test_insertion_order_is_kept() -> None:
    state = {"b.weight": torch.ones(2, 3), "a.weight": torch.ones(3, 2)}
    assert [layer.name for layer in read_weights(state)] == ["b", "a"]


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", None])
def test_checkpoint_files(tmp_path: Path, key: str | None) -> None:
    state = {"fc.weight": torch.randn(3, 2), "fc.bias": torch.randn(3)}
    path = tmp_path / "ckpt.pt"
    torch.save({key: state, "epoch": 3} if key else state, path)
    net = read_weights(path)
    assert net.layers[0].name == "fc" and str(path) in net.source
    torch.testing.assert_close(net.layers[0].weight, state["fc.weight"])
    assert read_weights(str(path)).spec == net.spec


def test_npz_and_list_checkpoint(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.ones((2, 3)), "fc.bias": np.zeros(2)})
    assert read_weights(tmp_path / "w.npz").spec.layers[0].bias_shape == (2,)
    torch.save([torch.ones(4, 3), torch.zeros(4), torch.ones(1, 4)], tmp_path / "list.pth")
    assert [s.bias_shape for s in read_weights(tmp_path / "list.pth").spec.layers] == [(4,), None]


def test_lists_of_lists_as_pairs() -> None:
    net = read_weights([[[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [0.0, 0.0, 0.0]]])
    assert net.spec.layers[0].weight_shape == (3, 2) and net.spec.layers[0].bias_shape == (3,)
