"""``sne fit`` and ``sne predict`` as real subprocesses on small real files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sne_plugin.cli import main
from sne_plugin.commands._networks import read_targets

SMALL = ["--epochs", "2", "--width", "8", "--heads", "1", "--device", "cpu", "--quiet"]


def _sne(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sne_plugin.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], np.ndarray]:
    """Eight small MLPs: six state-dict .pt files, two ONNX files (legacy exporter)."""
    import warnings

    folder = tmp_path_factory.mktemp("nets")
    paths, targets = [], []
    for i in range(8):
        torch.manual_seed(i)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        with torch.no_grad():
            model[0].weight.mul_(0.5 + 0.2 * i)
        if i < 6:
            path = folder / f"net{i}.pt"
            torch.save(model.state_dict(), path)
        else:
            path = folder / f"net{i}.onnx"
            with warnings.catch_warnings():  # the legacy exporter's deprecation notice
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(model, (torch.zeros(1, 4),), str(path), dynamo=False)
        paths.append(path)
        targets.append(0.3 + 0.08 * i)
    return paths, np.array(targets)


@pytest.mark.slow
def test_fit_then_predict_files(nets: tuple[list[Path], np.ndarray], tmp_path: Path) -> None:
    paths, y = nets
    table = tmp_path / "targets.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["network", "test_acc"])
        for path, value in reversed(list(zip(paths, y))):  # matched by path, not by order
            writer.writerow([path.name, value])
    model = tmp_path / "model"
    fit = _sne("fit", *map(str, paths), "--targets", str(table), "-o", str(model), *SMALL)
    assert fit.returncode == 0, fit.stderr
    assert model.exists()

    text = _sne("predict", str(model), *map(str, paths))
    assert text.returncode == 0, text.stderr
    lines = [line.split("\t") for line in text.stdout.splitlines()]
    assert [name for name, _ in lines] == [str(p) for p in paths]

    as_json = _sne("predict", str(model), *map(str, paths[:2]), str(paths[0].parent), "--json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert len(rows) == 2 + len(paths)  # the folder expands to its eight model files
    assert [r["network"] for r in rows[:2]] == [str(p) for p in paths[:2]]

    from sne_plugin import SNERegressor, read_weights

    expected = SNERegressor.load(model).predict([read_weights(p) for p in paths])
    np.testing.assert_allclose([float(v) for _, v in lines], expected, rtol=1e-4)
    np.testing.assert_allclose([r["prediction"] for r in rows[2:]], expected, rtol=1e-6)


@pytest.mark.slow
def test_fit_and_predict_on_a_zoo(tmp_path: Path) -> None:
    from sne_plugin.research.zoo import build_zoo

    zoo = tmp_path / "zoo"
    build_zoo(zoo, "mlp_w16", n_models=4, epochs=(0, 1), max_epochs=1, workers=1, progress=False)
    model = tmp_path / "model"
    fit = _sne("fit", str(zoo), "-o", str(model), *SMALL)  # targets from the zoo
    assert fit.returncode == 0, fit.stderr
    weights = sorted((zoo / "weights").glob("*.npz"))
    out = _sne("predict", str(model), str(weights[0]), "--epoch", "0", "--json")
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert row["network"] == str(weights[0]) and np.isfinite(row["prediction"])


def test_fit_predict_in_process(
    nets: tuple[list[Path], np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths, y = nets
    plain = tmp_path / "y.txt"
    plain.write_text("\n".join(map(str, y)))
    model = tmp_path / "model.joblib"
    argv = ["fit", *map(str, paths), "--targets", str(plain), "-o", str(model), *SMALL]
    assert main(argv) == 0
    assert main(["predict", str(model), *map(str, paths), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["network"] for r in rows] == [str(p) for p in paths]
    assert all(0 <= r["prediction"] <= 1 for r in rows)  # fitted with bce: accuracies


def test_fit_errors(
    nets: tuple[list[Path], np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(p) for p in nets[0]]
    assert main(["fit", *paths, "-o", str(tmp_path / "m"), *SMALL]) == 2
    assert "expected --targets FILE (one target per network)" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("0.5\n0.7\n")
    assert main(["fit", *paths, "--targets", str(short), "-o", str(tmp_path / "m")]) == 2
    assert "expected 8 targets (one per network, in order), got 2" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing"), paths[0]]) == 2
    assert "sne: error: " in capsys.readouterr().err


def test_read_targets_forms(tmp_path: Path) -> None:
    plain = tmp_path / "y.txt"
    plain.write_text("0.1\n\n0.2\n0.3\n")
    assert read_targets(str(plain), ["a", "b", "c"]).tolist() == [0.1, 0.2, 0.3]
    table = tmp_path / "y.csv"
    table.write_text("path,train_acc,test_acc\nx/b.pt,0.9,0.2\nx/a.pt,0.8,0.1\n")
    assert read_targets(str(table), ["a.pt", "b.pt"]).tolist() == [0.1, 0.2]
    assert read_targets(str(table), ["a.pt"], "train_acc").tolist() == [0.8]
    with pytest.raises(ValueError, match=r"expected a column named 'acc', found columns"):
        read_targets(str(table), ["a.pt"], "acc")
    with pytest.raises(ValueError, match=r"expected a row for network 'c.pt'"):
        read_targets(str(table), ["c.pt"])
    bad = tmp_path / "bad.csv"
    bad.write_text("a.pt,0.1\nb.pt,high\n")
    with pytest.raises(ValueError, match=r"line 2: expected a number in column last"):
        read_targets(str(bad), ["a.pt", "b.pt"])
