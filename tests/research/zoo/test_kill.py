"""kill -9 of a real zoo build at random points (3 times in one process, once with 2 worker
processes), each time resumed: the zoo that comes out equals a clean build with the same seed,
record by record and weight by weight, and no worker process outlives the build it served."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sne_plugin.research.zoo import build_zoo, load_zoo
from sne_plugin.research.zoo.store import load_state

N_MODELS = 10
SETTINGS = dict(
    arch="mlp_w16",
    n_models=N_MODELS,
    epochs=(0, 1),
    max_epochs=3,
    progress=False,
    group_size=1,
    dataset_args={"n": 1000},  # about 0.4 s a model: time to land kills between them
)
_SCRIPT = f"""
import sys
from sne_plugin.research.zoo import build_zoo
build_zoo(sys.argv[1], workers=int(sys.argv[2]), **{SETTINGS!r})
"""


def _lines(path: Path) -> int:
    file = path / "models.jsonl"
    return file.read_bytes().count(b"\n") if file.exists() else 0


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (Linux ``/proc``), recursively."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *_children(kid)]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_once(path: Path, rng: random.Random, workers: int, target: int) -> tuple[int, int]:
    """Start a build, SIGKILL it once ``target`` models are recorded, after a random delay
    (so the kill lands anywhere in training or writing); the models recorded before and
    after."""
    before = _lines(path)
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(path), str(workers)])
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None and _lines(path) < target:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.15))
    children = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    orphans = [c for c in children if _alive(c)]
    for pid in orphans:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not orphans, f"worker processes {orphans} outlived the killed build"
    _check_readable(path)
    return before, _lines(path)


def _check_readable(path: Path) -> None:
    """The zoo as the kill left it: every recorded model's weights file reads whole."""
    if not (path / "zoo.json").exists():
        return  # killed before it wrote its manifest
    zoo = load_zoo(path)
    assert _lines(path) <= len(zoo) <= _lines(path) + 1  # + a torn last line that parses
    for record in zoo.records:
        for epoch in (*record["saved_epochs"], "final"):
            assert load_state(record, epoch)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory):
    return build_zoo(tmp_path_factory.mktemp("clean") / "z", workers=1, **SETTINGS)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "kills"),
    [(1, 3), (2, 1)],  # with 2 workers each start spawns 2 more interpreters (slow here)
)
def test_random_kills_then_resume_equal_a_clean_build(
    tmp_path: Path, clean, workers: int, kills: int
) -> None:
    rng = random.Random(workers)
    targets = sorted(rng.sample(range(1, N_MODELS - 2), kills))  # the last models train fastest
    for attempt in range(4):  # on a loaded machine a build may finish before its last kill
        path = tmp_path / f"z{attempt}"
        progress = [_kill_once(path, rng, workers, max(1, t - 2 * attempt)) for t in targets]
        if progress[-1][1] < N_MODELS:
            break
    assert progress[-1][1] < N_MODELS, f"the build finished before its last kill: {progress}"
    subprocess.run([sys.executable, "-c", _SCRIPT, str(path), str(workers)], check=True)

    ids = [json.loads(line)["id"] for line in (path / "models.jsonl").read_text().splitlines()]
    assert sorted(ids) == list(range(N_MODELS)), f"every model once: {ids}"
    assert sorted(p.name for p in (path / "weights").iterdir()) == [
        f"{i:06d}.npz" for i in range(N_MODELS)
    ]
    resumed = load_zoo(path)
    strip = ("weights_file",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in resumed.records] == [
        {k: v for k, v in r.items() if k not in strip} for r in clean.records
    ]
    np.testing.assert_array_equal(resumed.targets(), clean.targets())
    for mine, theirs in zip(resumed.records, clean.records):
        for epoch in (*mine["saved_epochs"], "final"):
            a, b = load_state(mine, epoch), load_state(theirs, epoch)
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
