"""Every error path: an SNEError saying what was expected, what arrived and where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from sne_plugin.errors import SNEError
from sne_plugin.readers import read_many, read_weights


def _onnx_bytes() -> bytes:
    init = numpy_helper.from_array(np.ones((8, 64), np.float32), "w")
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    return helper.make_model(helper.make_graph([node], "g", [], [], [init])).SerializeToString()


def test_missing_file() -> None:
    with pytest.raises(
        SNEError, match=r"expected a path to an existing file, got 'nope.onnx' \(no such file\)"
    ):
        read_weights("nope.onnx")


def test_string_that_is_not_a_path() -> None:
    with pytest.raises(SNEError, match=r"expected a path to an existing file, got 'hello world'"):
        read_weights("hello world")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(
        SNEError, match=r"expected a save_pretrained folder holding .*an empty folder"
    ):
        read_weights(tmp_path)


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(
        SNEError, match=r"w.h5: unknown file extension '.h5'; expected one of .pt, .pth"
    ):
        read_weights(tmp_path / "w.h5")


@pytest.mark.parametrize("content", [b"this is not onnx at all \xff\xfe", "truncated"])
def test_corrupt_or_truncated_onnx(tmp_path: Path, content: bytes | str) -> None:
    data = _onnx_bytes()
    path = tmp_path / "bad.onnx"
    path.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    with pytest.raises(
        SNEError, match=r"bad.onnx: expected a valid ONNX model, but it could not be parsed"
    ):
        read_weights(path)


def test_corrupt_torch_checkpoint(tmp_path: Path) -> None:
    torch.save({"fc.weight": torch.ones(64, 64)}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "bad.pt").write_bytes(data[: len(data) // 2])  # a zip cut short
    with pytest.raises(
        SNEError, match=r"bad.pt: expected a torch checkpoint readable with weights_only=True"
    ):
        read_weights(tmp_path / "bad.pt")


def test_checkpoint_of_wrong_content(tmp_path: Path) -> None:
    torch.save(3, tmp_path / "n.pt")
    with pytest.raises(
        SNEError, match=r"n.pt: expected a state dict or a list of tensors .*got int"
    ):
        read_weights(tmp_path / "n.pt")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({}, r"<state_dict>: expected a network with at least one readable layer"),
        ([], r"<list>: expected a network with at least one readable layer"),
        ({"running_mean": torch.ones(3)}, r"at least one readable layer"),
        (
            {"fc.weight": ["a", "b"]},
            r"layer 'fc': expected a numeric array as weight, got list .*dtype <U1",
        ),
        (
            {"fc.weight": torch.tensor(1.0)},
            r"layer 'fc': expected an array as weight, got a 0-d scalar",
        ),
        ([np.float32(2.0)], r"item 0: expected an array as weight, got a 0-d scalar"),
        (
            [np.ones((2, 2)), np.ones(3)],
            r"layer 'layer0' \(dense\): expected a bias of length 2 .*got shape \(3,\)",
        ),
        (
            [(np.ones((4, 2)), np.ones(5))],
            r"expected a bias of length 4 \(the output dim of weight \(4, 2\)\)",
        ),
        (
            {"c.weight": np.ones((3, 2, 2)), "c.bias": np.ones(2)},
            r"<state_dict>, layer 'c' \(conv1d\): expected a bias of length 3",
        ),
        ([np.ones(3)], r"item 0: expected a weight of 2 to 5 dims .*got shape \(3,\)"),
        (
            [np.ones((1,) * 6)],
            r"<list>, layer 'layer0': expected a weight of 1 to 5 dims, got 6 dims",
        ),
        (
            [(np.ones((2, 2)), None, None)],
            r"item 0: expected a \(weight, bias\) pair, got a tuple of 3 items",
        ),
        ({1: np.ones((2, 2))}, r"expected a state dict with str keys, got key 1"),
        (np.ones((2, 2)), r"got a single numpy.ndarray of shape \(2, 2\); wrap .* in a list"),
        (3.5, r"expected an nn.Module, a state dict, .* got float"),
        (
            {"fc.weight": np.ones((2, 2)), "alpha": np.ones((4, 2))},
            r"cannot read .*'alpha' \(unrecognised entry",
        ),
        (
            [np.ones((2, 2), dtype=complex)],
            r"expected a real-valued weight, got dtype torch.complex128",
        ),
    ],
)
def test_bad_inputs(obj: object, message: str) -> None:
    with pytest.raises(SNEError, match=message):
        read_weights(obj)


def test_empty_onnx_graph() -> None:
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [], [])
    )
    with pytest.raises(
        SNEError, match=r"<onnx.ModelProto>: expected a network with at least one readable layer"
    ):
        read_weights(model)


def test_onnx_conv_with_wrong_weight_dims() -> None:
    init = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c")
    model = helper.make_model(helper.make_graph([node], "g", [], [], [init]))
    with pytest.raises(
        SNEError, match=r"node 'c' \(Conv\): expected a weight of 3 to 5 dims, got shape \(2, 2\)"
    ):
        read_weights(model)


def test_onnx_bias_mismatch() -> None:
    inits = [
        numpy_helper.from_array(np.ones((3, 2), np.float32), "fc.weight"),
        numpy_helper.from_array(np.ones(4, np.float32), "fc.bias"),
    ]
    node = helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], transB=1)
    model = helper.make_model(helper.make_graph([node], "g", [], [], inits))
    with pytest.raises(
        SNEError, match=r"<onnx.ModelProto>, layer 'fc' \(dense\): expected a bias of length 3"
    ):
        read_weights(model)


def test_errors_are_never_raw_exceptions(tmp_path: Path) -> None:
    onnx.save_model(onnx.ModelProto(), str(tmp_path / "empty.onnx"))
    with pytest.raises(SNEError, match="found none"):
        read_weights(tmp_path / "empty.onnx")


@pytest.mark.parametrize(
    "X", ["model.onnx", torch.nn.Linear(2, 2), {"a.weight": np.ones((2, 2))}, 3]
)
def test_read_many_wants_a_list(X: object) -> None:
    with pytest.raises(
        SNEError, match=r"expected a list of networks \(one item per network\), got .*wrap a single"
    ):
        read_many(X)


def test_read_many_names_the_index() -> None:
    good = [np.ones((2, 3))]
    with pytest.raises(
        SNEError, match=r"^X\[2\]: expected a path to an existing file, got 'missing.pt'"
    ):
        read_many([good, good, "missing.pt"])
    with pytest.raises(
        SNEError, match=r"^X\[1\]: <list>, item 0: expected an array as weight, got a 0-d scalar"
    ):
        read_many([good, [1.0, 2.0]])  # a list of floats: each item of X is one network


def test_read_many_reads_every_form(tmp_path: Path) -> None:
    torch.save({"fc.weight": torch.ones(2, 2)}, tmp_path / "a.pt")
    nets = read_many(
        (
            torch.nn.Linear(2, 2),
            tmp_path / "a.pt",
            [np.ones((2, 2))],
            np.array([None], dtype=object)[0:0],
        )[:3]
    )
    assert [len(net) for net in nets] == [1, 1, 1]
    assert read_many(np.array([nets[0], nets[1]], dtype=object)) == [nets[0], nets[1]]


def test_onnx_is_imported_only_when_an_onnx_model_is_read() -> None:
    import subprocess
    import sys

    code = (
        "import sys, torch, sne_plugin; from sne_plugin.readers import read_weights; "
        "read_weights(torch.nn.Linear(2, 2)); read_weights({'a.weight': torch.ones(2, 2)}); "
        "sys.exit(int('onnx' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0


def test_whole_pickled_module_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3)), path)
    with pytest.raises(SNEError) as caught:
        read_weights(path)
    text = str(caught.value)
    assert "\x1b" not in text  # torch's own message carries ANSI escape codes
    assert "got a whole pickled module (torch.save(model))" in text
    assert "torch.nn.modules.container.Sequential" in text
    assert "(1) re-save the weights alone, torch.save(model.state_dict(), PATH)" in text
    assert "(2) only if you trust the file's source" in text and "read_weights(model)" in text
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3)).state_dict(), path)
    assert read_weights(path).num_params == 9  # the advice works


def test_whole_module_in_the_legacy_format(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    torch.save(model, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(SNEError) as caught:
        read_weights(tmp_path / "old.pt")
    assert "\x1b" not in str(caught.value)
    assert (
        "got a whole pickled module (torch.save(model)): it names the classes "
        "torch.nn.modules.container.Sequential, torch.nn.modules.linear.Linear, which"
    ) in str(caught.value)
    torch.save(model.state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert read_weights(tmp_path / "old.pt").num_params == 9


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, this is text\n", r"got a text file \(it starts with 'hello, this is text'\)"),
        (b"", r"expected a torch checkpoint, got an empty file \(0 bytes\)"),
        (b"\x00\x01\xff\xfe binary", r"neither a zip archive nor a pickle \(it starts with b'"),
    ],
)
def test_file_that_is_no_checkpoint(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "w.pt").write_bytes(content)
    with pytest.raises(SNEError, match=message):
        read_weights(tmp_path / "w.pt")


def test_npz_without_state_dict_names(tmp_path: Path) -> None:
    np.savez(tmp_path / "wb.npz", w=np.ones((3, 2)), b=np.ones(3))
    hint = (
        r"The arrays 'w' \(shape \(3, 2\)\), 'b' \(shape \(3,\)\) are not named as in a "
        r"state dict \(NAME.weight and NAME.bias for each layer\).*rename them"
    )
    with pytest.raises(SNEError, match=r"wb.npz: cannot read the parameters .*" + hint):
        read_weights(tmp_path / "wb.npz")
    with (
        pytest.warns(UserWarning, match="skipped unreadable"),
        pytest.raises(SNEError, match=r"at least one readable layer.*" + hint),
    ):
        read_weights(tmp_path / "wb.npz", strict=False)  # skipping leaves nothing


def test_npz_unrecognised_entry_shows_its_shape(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.ones((3, 2)), "pos": np.ones((4, 2))})
    with pytest.raises(SNEError, match=r"'pos' \(unrecognised entry of shape \(4, 2\)\)"):
        read_weights(tmp_path / "w.npz")


def test_epoch_of_a_file_without_epochs(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.ones((3, 2))})
    with pytest.raises(SNEError, match=r"epoch=1 chooses a saved epoch .*holds one network"):
        read_weights(tmp_path / "w.npz", epoch=1)
    with pytest.raises(SNEError, match=r"epoch=1 chooses .*got torch.nn.modules.linear.Linear"):
        read_weights(torch.nn.Linear(2, 2), epoch=1)
