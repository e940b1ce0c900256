"""``sne inspect``: in process through sne_plugin.cli.main, and as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from sne_plugin.cli import main


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    inits = [
        numpy_helper.from_array(np.ones((16, 4, 3, 3), np.float32), "conv.weight"),
        numpy_helper.from_array(np.ones(16, np.float32), "conv.bias"),
        numpy_helper.from_array(np.ones((10, 16), np.float32), "fc.weight"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["h"]),
        helper.make_node("GlobalAveragePool", ["h"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight"], ["y"], transB=1),
    ]
    path = tmp_path / "file.onnx"
    onnx.save_model(helper.make_model(helper.make_graph(nodes, "g", [], [], inits)), str(path))
    return path


EXPECTED = """\
#  kind    name  weight    bias  params
0  conv2d  conv  16x4x3x3  16       592
1  dense   fc    10x16     -        160
total: 2 layers, 752 parameters"""


def test_inspect_in_process(onnx_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(onnx_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(EXPECTED)
    assert f"source: {onnx_file}" in out and "is_chain: True" in out


def test_inspect_strictness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.pt"
    torch.save({"fc.weight": torch.ones(2, 2), "alpha": torch.ones(1, 2)}, path)
    assert main(["inspect", str(path)]) == 2
    assert "sne: error: " in capsys.readouterr().err
    with pytest.warns(UserWarning, match="alpha"):
        assert main(["inspect", "--no-strict", str(path)]) == 0
    assert "1 layers, 4 parameters" in capsys.readouterr().out


def test_inspect_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "missing.onnx"]) == 2
    assert (
        "sne: error: expected a path to an existing file, got 'missing.onnx'"
        in capsys.readouterr().err
    )


@pytest.mark.slow
def test_inspect_subprocess(onnx_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sne_plugin.cli", "inspect", str(onnx_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(EXPECTED)


def test_strict_error_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.pt"
    torch.save({"fc.weight": torch.ones(2, 2), "alpha": torch.ones(1, 2)}, path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "pass --no-strict to skip them" in err and "strict=False" not in err


def _zoo_file(path: Path, epochs: tuple[int, ...]) -> Path:
    # The layout sne zoo build writes: one model, several epochs, keys epoch{e}/{name}.
    arrays = {}
    for e in epochs:
        arrays[f"epoch{e}/fc.weight"] = np.full((3, 2), float(e), np.float32)
        arrays[f"epoch{e}/fc.bias"] = np.ones(3, np.float32)
    np.savez(path, **arrays)
    return path


def test_inspect_zoo_file_reads_one_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _zoo_file(tmp_path / "000000.npz", (0, 1, 4))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "total: 1 layers, 9 parameters" in out  # not three epochs merged into 3 layers
    assert "(epoch 4 of [0, 1, 4])" in out
    assert main(["inspect", "--epoch", "1", str(path)]) == 0
    assert "(epoch 1 of [0, 1, 4])" in capsys.readouterr().out
    assert main(["inspect", "--epoch", "2", str(path)]) == 2
    assert "no weights saved at epoch 2; saved epochs: [0, 1, 4]" in capsys.readouterr().err


def test_read_weights_reads_one_epoch_of_a_built_zoo(tmp_path: Path) -> None:
    from sne_plugin.readers import read_weights
    from sne_plugin.research.zoo.build import build_zoo

    build_zoo(tmp_path / "z", "mlp_d1", n_models=1, epochs=(0, 1), workers=1, progress=False)
    path = tmp_path / "z" / "weights" / "000000.npz"
    with np.load(path) as archive:
        per_epoch = sum(k.startswith("epoch1/") for k in archive.files)
    last, first = read_weights(path), read_weights(path, epoch=0)
    assert last.source == f"{path} (epoch 1 of [0, 1])" and last.meta["epoch"] == 1
    assert len(last) == len(first) and 2 * len(last) >= per_epoch  # one epoch, not both
    assert not torch.equal(last.layers[0].weight, first.layers[0].weight)
    with pytest.raises(Exception, match=r"no weights saved at epoch 5; saved epochs: \[0, 1\]"):
        read_weights(path, epoch=5)


def test_messages_name_the_cli_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.ones((3, 2))})
    assert main(["inspect", "--epoch", "1", str(tmp_path / "w.npz")]) == 2
    err = capsys.readouterr().err
    assert "--epoch 1 chooses a saved epoch" in err and "epoch=" not in err


def test_inspect_canonical_folds_batchnorm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.BatchNorm1d(4)).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    assert main(["inspect", str(tmp_path / "m.pt")]) == 0
    assert "total: 2 layers, 36 parameters" in capsys.readouterr().out  # as stored
    assert main(["inspect", "--canonical", str(tmp_path / "m.pt")]) == 0
    assert "total: 1 layers, 28 parameters" in capsys.readouterr().out  # BatchNorm folded
