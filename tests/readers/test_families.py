"""The model families users have, built from their libraries with random weights (tiny
configs, no download), read whole with ``strict=True`` from module, state dict and
Hugging Face files (``.safetensors``, ``save_pretrained`` folders); then the new layer
kinds through the estimators: SNERegressor on a list mixing the families, ``strict`` in
SNERegressor and SNEPruner, and regressors saved before the kinds were added."""

from __future__ import annotations

import json
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sne_plugin import SNERegressor
from sne_plugin.encoder.plan import N_TYPES
from sne_plugin.errors import SNEError
from sne_plugin.readers import read_weights
from sne_plugin.weights import LayerKind, NetworkWeights, parameter_limit


def _transformers() -> object:
    return pytest.importorskip("transformers", reason="the hf extra (transformers) is missing")


def vit() -> nn.Module:
    t = _transformers()
    config = t.ViTConfig(  # type: ignore[attr-defined]
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=16,
        patch_size=8,
    )
    return t.ViTModel(config)  # type: ignore[attr-defined,no-any-return]


def deit() -> nn.Module:
    t = _transformers()
    config = t.DeiTConfig(  # type: ignore[attr-defined]
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=16,
        patch_size=8,
    )
    return t.DeiTModel(config)  # type: ignore[attr-defined,no-any-return]


def convnext() -> nn.Module:
    t = _transformers()
    config = t.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)  # type: ignore[attr-defined]
    return t.ConvNextModel(config)  # type: ignore[attr-defined,no-any-return]


def swin() -> nn.Module:
    t = _transformers()
    config = t.SwinConfig(  # type: ignore[attr-defined]
        image_size=16, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=2
    )
    return t.SwinModel(config)  # type: ignore[attr-defined,no-any-return]


def gpt2() -> nn.Module:
    t = _transformers()
    config = t.GPT2Config(  # type: ignore[attr-defined]
        n_embd=16, n_layer=1, n_head=2, n_positions=8, vocab_size=20, bos_token_id=0, eos_token_id=0
    )
    return t.GPT2LMHeadModel(config)  # type: ignore[attr-defined,no-any-return]


def bert() -> nn.Module:
    t = _transformers()
    config = t.BertConfig(  # type: ignore[attr-defined]
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=20,
        max_position_embeddings=8,
    )
    return t.BertModel(config)  # type: ignore[attr-defined,no-any-return]


def llama() -> nn.Module:
    t = _transformers()
    config = t.LlamaConfig(  # type: ignore[attr-defined]
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=20,
        max_position_embeddings=16,
    )
    return t.LlamaForCausalLM(config)  # type: ignore[attr-defined,no-any-return]


def clip() -> nn.Module:
    t = _transformers()
    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}
    config = t.CLIPConfig(  # type: ignore[attr-defined]
        text_config={**small, "num_attention_heads": 2, "vocab_size": 20},
        vision_config={**small, "num_attention_heads": 2, "image_size": 16, "patch_size": 8},
        projection_dim=8,
    )
    return t.CLIPModel(config)  # type: ignore[attr-defined,no-any-return]


def beit() -> nn.Module:
    t = _transformers()
    config = t.BeitConfig(  # type: ignore[attr-defined]
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
        use_relative_position_bias=True,
        layer_scale_init_value=0.1,
    )
    return t.BeitModel(config)  # type: ignore[attr-defined,no-any-return]


def t5() -> nn.Module:
    t = _transformers()
    config = t.T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=20)  # type: ignore[attr-defined]
    return t.T5Model(config)  # type: ignore[attr-defined,no-any-return]


def lstm() -> nn.Module:
    return nn.LSTM(5, 6, num_layers=2, bidirectional=True)


def gru() -> nn.Module:
    return nn.GRU(5, 6, num_layers=2, bidirectional=True)


class _Tagger(nn.Module):
    """A sequence model as users write one: embedding, LSTM with projections, head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(12, 5)
        self.rnn = nn.LSTM(5, 6, proj_size=3, batch_first=True)
        self.cell = nn.GRUCell(3, 4)
        self.head = nn.Linear(4, 2)


# family -> (builder, the kinds its reading must contain)
FAMILIES: dict[str, tuple[Callable[[], nn.Module], set[str]]] = {
    "vit": (vit, {"token", "position", "conv2d", "dense", "norm"}),
    "deit": (deit, {"token", "position", "conv2d", "dense", "norm"}),
    "convnext": (convnext, {"scale", "conv2d", "dense", "norm"}),
    "swin": (swin, {"attention_bias", "conv2d", "dense", "norm"}),
    "gpt2": (gpt2, {"embedding", "dense", "norm"}),
    "bert": (bert, {"embedding", "dense", "norm"}),
    "llama": (llama, {"embedding", "dense", "norm"}),  # LlamaRMSNorm: a norm of its own class
    "clip": (clip, {"token", "scale", "embedding", "conv2d", "dense", "norm"}),
    "beit": (beit, {"token", "scale", "attention_bias", "conv2d", "dense", "norm"}),
    "t5": (t5, {"embedding", "dense", "norm"}),  # T5LayerNorm: a norm of its own class
    "lstm": (lstm, {"lstm"}),
    "gru": (gru, {"gru"}),
    "tagger": (_Tagger, {"embedding", "lstm", "gru", "dense"}),
}


def _parameters(module: nn.Module) -> int:
    """Every parameter of ``module``, a tied one once (``parameters()`` dedups by object)."""
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[str, nn.Module, set[str]]:
    build, kinds = FAMILIES[request.param]
    torch.manual_seed(0)
    return request.param, build(), kinds


def test_module_is_read_whole_under_strict(family: tuple[str, nn.Module, set[str]]) -> None:
    _, module, kinds = family
    net = read_weights(module, strict=True)
    assert net.num_params == _parameters(module)
    assert {layer.kind.value for layer in net} >= kinds


def test_state_dict_gives_the_module_reading(family: tuple[str, nn.Module, set[str]]) -> None:
    """Same layers, names, values and order (a state dict does not record that a 2-d weight
    belongs to an nn.Embedding: those read as dense)."""
    _, module, _ = family
    by_module = read_weights(module, strict=True)
    by_state = read_weights(module.state_dict(), strict=True)
    assert [layer.name for layer in by_state] == [layer.name for layer in by_module]
    for a, b in zip(by_module, by_state, strict=True):
        assert torch.equal(a.weight, b.weight), a.name
        assert (a.bias is None and b.bias is None) or torch.equal(a.bias, b.bias), a.name
        assert a.kind is b.kind or (a.kind, b.kind) == (LayerKind.EMBEDDING, LayerKind.DENSE)


def test_vit_tokens_and_position_table_are_layers_of_their_own() -> None:
    module = vit()
    layers = {layer.name: layer for layer in read_weights(module)}
    cls = layers["embeddings.cls_token"]
    assert (cls.kind, cls.spec.weight_shape) == (LayerKind.TOKEN, (1, 16))
    table = layers["embeddings.position_embeddings"]
    assert (table.kind, table.spec.weight_shape) == (LayerKind.POSITION, (5, 16))  # 4 patches + cls
    assert torch.equal(table.weight, module.embeddings.position_embeddings.detach()[0])


def test_deit_has_its_distillation_token() -> None:
    kinds = [(layer.name, layer.kind) for layer in read_weights(deit())]
    assert ("embeddings.distillation_token", LayerKind.TOKEN) in kinds


def test_convnext_layer_scale_is_a_scale_layer() -> None:
    module = convnext()
    scales = [layer for layer in read_weights(module) if layer.kind is LayerKind.SCALE]
    assert [layer.spec.weight_shape for layer in scales] == [(8,), (16,)]
    gamma = module.encoder.stages[0].layers[0].layer_scale_parameter
    assert torch.equal(scales[0].weight, gamma.detach())


def test_swin_bias_tables_are_read_and_index_buffers_are_not() -> None:
    module = swin()
    tables = [layer for layer in read_weights(module) if layer.kind is LayerKind.ATTENTION_BIAS]
    assert [layer.spec.weight_shape for layer in tables] == [(9, 1), (9, 2)]  # (2*2-1)^2 x heads
    index = {k: b for k, b in module.named_buffers() if k.endswith("relative_position_index")}
    assert len(index) == 2 and not any(b.is_floating_point() for b in index.values())
    # older transformers saved the index tables in the state dict (persistent buffers)
    state = {**module.state_dict(), **index}
    assert read_weights(state, strict=True).num_params == _parameters(module)


def test_lstm_weights_with_their_gates_in_forward_order() -> None:
    module = lstm()
    spec = [
        (s.kind, s.name, s.weight_shape, s.bias_shape) for s in read_weights(module).spec.layers
    ]
    h, lk = 6, LayerKind.LSTM
    assert spec == [
        (lk, "<root>.l0.ih", (4 * h, 5), (4 * h,)),
        (lk, "<root>.l0.hh", (4 * h, h), (4 * h,)),
        (lk, "<root>.l0_reverse.ih", (4 * h, 5), (4 * h,)),
        (lk, "<root>.l0_reverse.hh", (4 * h, h), (4 * h,)),
        (lk, "<root>.l1.ih", (4 * h, 2 * h), (4 * h,)),
        (lk, "<root>.l1.hh", (4 * h, h), (4 * h,)),
        (lk, "<root>.l1_reverse.ih", (4 * h, 2 * h), (4 * h,)),
        (lk, "<root>.l1_reverse.hh", (4 * h, h), (4 * h,)),
    ]
    net = read_weights(module)
    assert torch.equal(net.layers[2].weight, module.weight_ih_l0_reverse.detach())
    assert torch.equal(net.layers[3].bias, module.bias_hh_l0_reverse.detach())


def test_gru_and_plain_rnn_are_told_apart_by_their_gates_in_a_state_dict() -> None:
    assert read_weights(gru().state_dict()).layers[0].kind is LayerKind.GRU
    rnn = nn.RNN(5, 6, nonlinearity="relu")
    assert {layer.kind for layer in read_weights(rnn.state_dict())} == {LayerKind.RNN}
    assert {layer.kind for layer in read_weights(rnn)} == {LayerKind.RNN}


def test_lstm_projection_and_cells() -> None:
    spec = {s.name: (s.kind, s.weight_shape) for s in read_weights(_Tagger()).spec.layers}
    assert spec["rnn.l0.hr"] == (LayerKind.DENSE, (3, 6))  # the projection: no gates
    assert spec["rnn.l0.hh"] == (LayerKind.LSTM, (24, 3))
    assert spec["cell.ih"] == (LayerKind.GRU, (12, 3))


def test_gpt2_conv1d_is_transposed_to_a_dense_layer() -> None:
    module = gpt2()
    conv = module.transformer.h[0].attn.c_attn  # transformers' Conv1D, weight (in, out)
    assert tuple(conv.weight.shape) == (16, 48)
    for net in (read_weights(module), read_weights(module.state_dict())):
        layer = {layer.name: layer for layer in net}["transformer.h.0.attn.c_attn"]
        assert (layer.kind, layer.spec.weight_shape) == (LayerKind.DENSE, (48, 16))
        assert torch.equal(layer.weight, conv.weight.detach().t())
        square = {layer.name: layer for layer in net}["transformer.h.0.attn.c_proj"]
        assert torch.equal(square.weight, module.transformer.h[0].attn.c_proj.weight.detach().t())


def test_gpt2_tied_head_counts_once() -> None:
    module = gpt2()
    assert module.lm_head.weight is module.transformer.wte.weight
    by_module = read_weights(module)
    assert by_module.meta["tied"] == ["lm_head"]
    by_state = read_weights(module.state_dict())
    assert by_state.meta["tied"] == ["lm_head.weight"]
    assert by_module.num_params == by_state.num_params == _parameters(module)


def test_an_embedding_tied_to_its_head_counts_once() -> None:
    embed, head = nn.Embedding(100, 8), nn.Linear(8, 100, bias=False)
    head.weight = embed.weight
    model = nn.Sequential(embed, nn.Linear(8, 8), head)
    assert read_weights(model).num_params == 800 + 72
    state = model.state_dict()
    assert state["0.weight"].data_ptr() == state["2.weight"].data_ptr()
    assert read_weights(state).num_params == 800 + 72
    copied = {k: v.clone() for k, v in state.items()}  # equal values, own storage: not tied
    assert read_weights(copied).num_params == 1600 + 72


def test_an_unknown_bare_parameter_still_fails_under_strict() -> None:
    model = nn.Module()
    model.alpha = nn.Parameter(torch.ones(3))
    model.fc = nn.Linear(3, 2)
    with pytest.raises(SNEError, match=r"'<root>' \(Module with parameters alpha\)"):
        read_weights(model)
    with pytest.warns(UserWarning, match="skipped unreadable parameters"):
        assert read_weights(model, strict=False).num_params == 8


def test_norms_of_other_classes_read_as_their_state_dict_does() -> None:
    class Norm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gamma, self.beta = nn.Parameter(torch.ones(4)), nn.Parameter(torch.zeros(4))

    class RMSNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(4))

    model = nn.Sequential(nn.Linear(3, 4), Norm(), RMSNorm())
    for net in (read_weights(model), read_weights(model.state_dict())):
        assert [(layer.name, layer.kind.value, layer.num_params) for layer in net] == [
            ("0", "dense", 16),
            ("1", "norm", 8),
            ("2", "norm", 4),
        ]


def test_clip_class_embedding_and_temperature() -> None:
    module = clip()
    layers = {layer.name: layer for layer in read_weights(module.state_dict())}
    token = layers["vision_model.embeddings.class_embedding"]
    assert (token.kind, token.spec.weight_shape) == (LayerKind.TOKEN, (1, 16))
    scale = layers["logit_scale"]  # a 0-d parameter: one learned scalar
    assert (scale.kind, scale.spec.weight_shape) == (LayerKind.SCALE, (1,))
    assert float(scale.weight[0]) == float(module.logit_scale.detach())


@pytest.mark.parametrize("old_api", [False, True])
def test_weight_norm_in_a_state_dict_reads_as_the_module_does(old_api: bool) -> None:
    torch.manual_seed(0)
    conv = nn.Conv1d(4, 6, 3)
    if old_api:  # weight_g / weight_v, deprecated but still in checkpoints
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            normed = nn.utils.weight_norm(conv, dim=2)
    else:  # parametrizations.weight.original0 / original1
        normed = nn.utils.parametrizations.weight_norm(conv, dim=2)
    model = nn.Sequential(normed, nn.ReLU(), nn.Conv1d(6, 2, 1))
    by_module, by_state = read_weights(model), read_weights(model.state_dict(), strict=True)
    assert [layer.name for layer in by_state] == [layer.name for layer in by_module] == ["0", "2"]
    torch.testing.assert_close(by_state.layers[0].weight, by_module.layers[0].weight)
    torch.testing.assert_close(by_state.layers[0].bias, by_module.layers[0].bias)


def test_wav2vec2_positional_conv_and_mask_embedding() -> None:
    t = _transformers()
    config = t.Wav2Vec2Config(  # type: ignore[attr-defined]
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        conv_dim=(8, 8),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2,
    )
    module = t.Wav2Vec2Model(config)  # type: ignore[attr-defined]
    by_module, by_state = read_weights(module), read_weights(module.state_dict())
    assert [layer.name for layer in by_state] == [layer.name for layer in by_module]
    for a, b in zip(by_module, by_state, strict=True):
        torch.testing.assert_close(a.weight, b.weight)
    # the positional conv is weight-normed: its magnitude g is folded into the weight
    g = module.encoder.pos_conv_embed.conv.parametrizations.weight.original0
    assert by_module.num_params == _parameters(module) - g.numel()
    assert {layer.name: layer.kind for layer in by_module}["masked_spec_embed"] is LayerKind.TOKEN


def test_a_gamma_beside_beta_is_a_norm_not_a_scale() -> None:
    net = read_weights(
        {"bn.gamma": torch.ones(4), "bn.beta": torch.zeros(4), "x.gamma": torch.ones(4)}
    )
    assert [(layer.name, layer.kind.value, layer.bias is not None) for layer in net] == [
        ("bn", "norm", True),
        ("x.gamma", "scale", False),
    ]


@pytest.mark.parametrize(
    ("key", "shape", "kind", "read_shape"),
    [
        ("encoder.class_token", (1, 1, 8), "token", (1, 8)),  # torchvision's ViT
        ("encoder.pos_embedding", (1, 5, 8), "position", (5, 8)),
        ("blocks.0.reg_token", (1, 4, 8), "token", (4, 8)),  # timm's register tokens
        ("stage.0.layer_scale", (8, 1, 1), "scale", (8,)),  # torchvision's ConvNeXt
        ("blocks.0.ls1.gamma", (8,), "scale", (8,)),  # timm's LayerScale
        ("blocks.0.lambda_1", (8,), "scale", (8,)),  # BEiT in transformers
        ("attn.relative_position_bias_table", (49, 3), "attention_bias", (49, 3)),
    ],
)
def test_bare_parameter_names_of_other_libraries(
    key: str, shape: tuple[int, ...], kind: str, read_shape: tuple[int, ...]
) -> None:
    layer = read_weights({key: torch.randn(shape)}, strict=True).layers[0]
    assert (layer.name, layer.kind.value, layer.spec.weight_shape) == (key, kind, read_shape)


def test_a_recurrent_weight_must_hold_whole_gates() -> None:
    from sne_plugin.weights import Layer

    with pytest.raises(SNEError, match=r"'rnn' \(lstm\): expected 4 gates .* \(6 rows\)"):
        Layer(LayerKind.LSTM, "rnn", torch.ones(6, 3))


# ---------------------------------------------------------------- Hugging Face files
def test_save_pretrained_folder_reads_as_the_module(tmp_path: Path) -> None:
    module = vit()
    module.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    by_folder = read_weights(tmp_path, strict=True)
    by_module = read_weights(module, strict=True)
    assert [layer.name for layer in by_folder] == [layer.name for layer in by_module]
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(by_module, by_folder, strict=True))
    assert by_folder.meta["config"]["model_type"] == "vit"


def test_save_pretrained_folder_whose_files_lack_a_weight(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch", reason="the hf extra is missing")
    vit().save_pretrained(tmp_path)
    state = safetensors.load_file(tmp_path / "model.safetensors")
    missing = next(key for key in state if key.endswith("cls_token"))
    del state[missing]
    safetensors.save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SNEError, match=r"weights the files lack \[.*cls_token"):
        read_weights(tmp_path)
    with pytest.warns(UserWarning, match="the files do not match the config's model"):
        read_weights(tmp_path, strict=False)


def test_save_pretrained_folder_over_the_cap_is_refused_before_building(tmp_path: Path) -> None:
    vit().save_pretrained(tmp_path)
    with parameter_limit(1000), pytest.raises(SNEError, match=r"declares [\d,]+ parameters"):
        read_weights(tmp_path)


def test_safetensors_file_keys_in_numeric_order(tmp_path: Path) -> None:
    save_file = pytest.importorskip("safetensors.torch", reason="the hf extra is missing").save_file
    state = {f"h.{i}.weight": torch.ones(4, 4) for i in (0, 1, 2, 10, 11)}
    save_file(state, tmp_path / "w.safetensors")  # the file stores them sorted: h.10 before h.2
    names = [layer.name for layer in read_weights(tmp_path / "w.safetensors")]
    assert names == ["h.0", "h.1", "h.2", "h.10", "h.11"]


def test_save_pretrained_folder_with_a_config_it_cannot_build(tmp_path: Path) -> None:
    vit().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": -4}))
    with pytest.raises(SNEError, match=r"config.json: expected a config that ViTModel builds"):
        read_weights(tmp_path)


def test_save_pretrained_of_a_tied_model(tmp_path: Path) -> None:
    module = gpt2()
    module.save_pretrained(tmp_path)
    assert read_weights(tmp_path).num_params == _parameters(module)


def test_pytorch_model_bin_folder(tmp_path: Path) -> None:
    module = convnext()
    torch.save(module.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "convnext"}))
    assert read_weights(tmp_path).num_params == _parameters(module)


def test_sharded_safetensors_folder(tmp_path: Path) -> None:
    save_file = pytest.importorskip("safetensors.torch", reason="the hf extra is missing").save_file
    state = {k: v.contiguous() for k, v in lstm().state_dict().items()}
    keys = list(state)
    shards = {"a.safetensors": keys[:3], "b.safetensors": keys[3:]}
    for name, part in shards.items():
        save_file({k: state[k] for k in part}, tmp_path / name)
    weight_map = {k: name for name, part in shards.items() for k in part}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    net = read_weights(tmp_path)
    assert [layer.name for layer in net] == [layer.name for layer in read_weights(state)]


def _safetensors_file(tmp_path: Path) -> Path:
    save_file = pytest.importorskip("safetensors.torch", reason="the hf extra is missing").save_file
    path = tmp_path / "w.safetensors"
    save_file({"fc.weight": torch.ones(300, 10), "fc.bias": torch.zeros(300)}, path)
    return path


def test_safetensors_file(tmp_path: Path) -> None:
    net = read_weights(_safetensors_file(tmp_path))
    assert isinstance(net, NetworkWeights) and net.spec.layers[0].weight_shape == (300, 10)


def test_safetensors_over_the_cap_is_refused_before_loading(tmp_path: Path) -> None:
    path = _safetensors_file(tmp_path)
    with parameter_limit(1000), pytest.raises(SNEError, match=r"'fc.weight'.*3,000 parameters"):
        read_weights(path)


def test_safetensors_header_declaring_more_than_the_file_holds(tmp_path: Path) -> None:
    path = _safetensors_file(tmp_path)
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header["fc.weight"]["shape"] = [3000, 10]
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
    with pytest.raises(SNEError, match=r"'fc.weight': expected 120,000 bytes inside"):
        read_weights(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01", "no header"),
        (struct.pack("<Q", 10**9) + b"{}", "declared length of 1,000,000,000"),
        (struct.pack("<Q", 2) + b"[]", "expected a JSON object"),
        (struct.pack("<Q", 3) + b"{x}", "expected a JSON safetensors header"),
    ],
)
def test_malformed_safetensors(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(SNEError, match=message):
        read_weights(path)


# ---------------------------------------------------------------- estimators
_TINY = {"width": 8, "heads": 2, "chunk_size": 16, "epochs": 2, "validation_fraction": 0.0}


class _Odd(nn.Module):
    """A network with a parameter no reader can place (``alpha``)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.alpha = nn.Parameter(torch.full((3,), scale))


def _mixed() -> list[nn.Module]:
    torch.manual_seed(0)
    nets = []
    for name in ("vit", "convnext", "swin", "gpt2", "lstm", "gru"):
        build, _ = FAMILIES[name]
        nets.extend(build() for _ in range(2))
    return nets


def test_regressor_fits_and_predicts_on_mixed_families() -> None:
    nets = _mixed()
    kinds = {layer.kind for net in nets for layer in read_weights(net)}
    assert {LayerKind.TOKEN, LayerKind.POSITION, LayerKind.SCALE} <= kinds
    assert {LayerKind.ATTENTION_BIAS, LayerKind.LSTM, LayerKind.GRU} <= kinds
    y = np.linspace(0.2, 0.9, len(nets))
    model = SNERegressor(**_TINY, random_state=0).fit(nets, y)
    predicted = model.predict(nets)
    assert predicted.shape == (len(nets),) and np.isfinite(predicted).all()
    assert model.transform(nets[:3]).shape == (3, 8)
    # each kind has its own learned type encoding (weight and bias rows)
    assert model.module_.encoder.type_embedding.num_embeddings == N_TYPES == 2 * len(LayerKind)


def test_regressor_strict_refuses_what_it_cannot_read() -> None:
    nets = [_Odd(s) for s in (0.1, 0.5, 0.9)]
    with pytest.raises(SNEError, match=r"X\[0\]: .*'<root>' \(_Odd with parameters alpha\)"):
        SNERegressor(**_TINY).fit(nets, [0.2, 0.5, 0.8])


def test_regressor_not_strict_reads_what_it_can_and_says_so_once() -> None:
    nets = [_Odd(s) for s in (0.1, 0.5, 0.9)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = SNERegressor(**_TINY, strict=False, random_state=0).fit(nets, [0.2, 0.5, 0.8])
    told = [str(w.message) for w in caught if "strict=False" in str(w.message)]
    assert len(told) == 1 and told[0].startswith("SNERegressor(strict=False): 3 of 3 networks")
    # the readers' own warning, one per network, is folded into that one
    assert len([w for w in caught if "skipped unreadable" in str(w.message)]) == 1
    with pytest.warns(UserWarning, match=r"1 of 1 networks"):
        assert model.predict(nets[:1]).shape == (1,)


def test_regressor_strict_must_be_a_bool() -> None:
    with pytest.raises(SNEError, match=r"strict must be True or False, but got strict='no'"):
        SNERegressor(**_TINY, strict="no").fit([nn.Linear(2, 2)] * 2, [0.1, 0.2])  # type: ignore[arg-type]


def test_regressor_saved_before_the_new_kinds_still_loads(tmp_path: Path) -> None:
    """A file whose type table has the 20 rows of the 10 kinds before this change: the
    saved rows are kept, the new kinds get fresh rows, and predictions are unchanged."""
    nets = [nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2)) for _ in range(4)]
    model = SNERegressor(**_TINY, random_state=0).fit(nets, [0.2, 0.4, 0.6, 0.8])
    path = tmp_path / "old.sne"
    model.save(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    table = "module.encoder.type_embedding.weight"
    assert arrays[table].shape[0] == N_TYPES > 20
    arrays[table] = arrays[table][:20]
    moments = [
        k for k, v in arrays.items() if k.startswith("optimizer.") and v.shape[:1] == (N_TYPES,)
    ]
    assert moments  # AdamW's moments of the table
    for key in moments:
        arrays[key] = arrays[key][:20]
    np.savez(path, **arrays)
    loaded = SNERegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(nets), model.predict(nets))
    loaded.partial_fit(nets, [0.2, 0.4, 0.6, 0.8])  # the optimizer state fits the grown table


def test_regressor_pickled_before_the_new_kinds_still_loads() -> None:
    nets = [nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2)) for _ in range(4)]
    model = SNERegressor(**_TINY, random_state=0).fit(nets, [0.2, 0.4, 0.6, 0.8])
    state = model.__getstate__()
    key = "encoder.type_embedding.weight"
    state["module_"] = {**state["module_"], key: state["module_"][key][:20]}
    for entry in state["optimizer_"]["state"].values():
        for name, value in list(entry.items()):
            if torch.is_tensor(value) and value.shape[:1] == (N_TYPES,):
                entry[name] = value[:20]
    old = SNERegressor.__new__(SNERegressor)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.predict(nets), model.predict(nets))
    old.partial_fit(nets, [0.2, 0.4, 0.6, 0.8])


def test_pruner_strict() -> None:
    optuna = pytest.importorskip("optuna", reason="the optuna extra is missing")
    from sne_plugin.integrations.optuna import SNEPruner, report_weights

    study = optuna.create_study(pruner=SNEPruner(strict=True))
    with pytest.raises(SNEError, match=r"_Odd with parameters alpha"):
        report_weights(study.ask(), _Odd(0.5), 0)
    lenient = SNEPruner(strict=False)
    study = optuna.create_study(pruner=lenient)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            report_weights(study.ask(), _Odd(0.5), step)
    told = [str(w.message) for w in caught if "strict=False" in str(w.message)]
    assert len(told) == 1 and told[0].startswith("SNEPruner: strict=False: skipped")
    with pytest.raises(ValueError, match=r"strict must be True or False, but got strict=1"):
        SNEPruner(strict=1)  # type: ignore[arg-type]
