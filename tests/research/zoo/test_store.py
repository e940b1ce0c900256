from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sne_plugin.errors import SNEError
from sne_plugin.research.zoo import build_module, build_zoo, load_dataset, load_zoo
from sne_plugin.research.zoo.cli import register

TINY = {"n": 200}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "z"
    return build_zoo(
        path,
        arch="mlp_w16",
        n_models=8,
        epochs=(0, 1),
        max_epochs=2,
        workers=1,
        progress=False,
        dataset_args=TINY,
    )


def test_records_and_api(zoo) -> None:
    assert len(zoo) == 8 and [r["id"] for r in zoo.records] == list(range(8))
    r = zoo.records[0]
    for key in ("arch", "dataset", "lr", "optimizer", "test_acc", "train_acc", "acc_by_epoch"):
        assert key in r
    assert r["acc_by_epoch"][r["final_epoch"]] == r["test_acc"]
    assert zoo.targets("test_acc").shape == (8,)
    hm = zoo.hparams_matrix()
    assert hm.shape == (8, len(zoo.hparam_names())) and np.isfinite(hm).all()


def test_weights_match_module(zoo) -> None:
    nets = zoo.weights(epoch="final")
    assert len(nets) == 8 and all(n.is_chain for n in nets)
    rec = zoo.records[3]
    module = build_module(rec)
    torch.testing.assert_close(nets[3].layers[0].weight, module.body[1].weight)
    _, _, Xt, yt = load_dataset("digits", **TINY)
    acc = (module(torch.from_numpy(Xt)).argmax(1).numpy() == yt).mean()
    assert abs(acc - rec["test_acc"]) < 1e-6
    assert not torch.equal(zoo.weights(epoch=0)[3].layers[0].weight, nets[3].layers[0].weight)


def test_missing_epoch(zoo) -> None:
    with pytest.raises(SNEError, match="no weights saved at epoch 7"):
        zoo.weights(epoch=7)


def test_resume_with_other_settings_refused(zoo) -> None:
    with pytest.raises(SNEError, match="other settings"):
        build_zoo(
            zoo.path,
            arch="mlp",
            n_models=8,
            epochs=(0, 1),
            max_epochs=2,
            workers=1,
            progress=False,
            dataset_args=TINY,
        )


def test_not_a_zoo(tmp_path) -> None:
    with pytest.raises(SNEError, match=r"zoo\.json is missing"):
        load_zoo(tmp_path)


_SCRIPT = """
import sys
from sne_plugin.research.zoo import build_zoo
build_zoo(sys.argv[1], arch="mlp_w16", n_models=16, epochs=(0, 1), max_epochs=3, workers=1,
          progress=False, group_size=1, dataset_args={"n": 400})
"""


@pytest.mark.slow
def test_kill9_and_resume(tmp_path: Path) -> None:
    path = tmp_path / "z"
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(path)])
    jsonl = path / "models.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if jsonl.exists() and jsonl.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = jsonl.read_bytes().count(b"\n")
    assert done_before < 16, "the build finished before it could be killed"
    with open(jsonl, "ab") as f:  # also a torn last line, as if killed mid-append
        f.write(b'{"id": 99, "arch"')
    (path / "weights" / "000015.npz.tmp").write_bytes(b"half")
    subprocess.run([sys.executable, "-c", _SCRIPT, str(path)], check=True)
    ids = [json.loads(line)["id"] for line in jsonl.read_text().splitlines()]
    assert sorted(ids) == list(range(16))
    assert not list((path / "weights").glob("*.tmp"))
    zoo = load_zoo(path)
    assert len(zoo) == 16 and len(zoo.weights()) == 16 and len(zoo.weights(epoch=1)) == 16


def test_cli_build_and_info(tmp_path, capsys) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(), "build and summarise zoos")
    args = parser.parse_args(
        [
            "zoo",
            "build",
            str(tmp_path / "c"),
            "--arch",
            "mlp_w16",
            "--n-models",
            "2",
            "--workers",
            "1",
            "--epochs",
            "0,1",
            "--max-epochs",
            "1",
            "--quiet",
        ]
    )
    assert args.func(args) == 0
    args = parser.parse_args(["zoo", "info", str(tmp_path / "c")])
    assert args.func(args) == 0
    assert "2/2 models" in capsys.readouterr().out
