"""Nothing escapes ``should_prune()``, and storage faults in ``report_weights`` warn and let
the trial go on: real Optuna storage (SQLite file, journal file) and real files."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from sne_plugin.integrations.optuna import SNEPruner, report_weights
from sne_plugin.testing import FirstWeightPredictor
from sne_plugin.testing.optuna import net, run_trial, storage_for

optuna.logging.set_verbosity(optuna.logging.WARNING)
STORAGES = ["sqlite", "journal"]


def _study(tmp_path: Path, kind: str, pruner: SNEPruner, name: str = "s") -> optuna.Study:
    path = tmp_path / ("study.db" if kind == "sqlite" else "study.log")
    return optuna.create_study(
        study_name=name,
        direction="maximize",
        pruner=pruner,
        storage=storage_for(kind, str(path)),
        load_if_exists=True,
    )


def _pruner(artifacts: Path | None = None) -> SNEPruner:
    return SNEPruner(FirstWeightPredictor(), n_min_trials=2, artifact_dir=artifacts)


@pytest.mark.parametrize("kind", STORAGES)
def test_a_non_ascii_digit_step_attribute_is_ignored(tmp_path: Path, kind: str) -> None:
    odd = {"sne:weights:²": None, "sne:weights:١": 1, "sne:weights:": None}
    answers = {}
    for name, attrs in (("odd", odd), ("plain", {})):
        (tmp_path / name).mkdir()
        study = _study(tmp_path / name, kind, _pruner())
        for scale in (0.2, 0.5, 0.8):
            run_trial(study, scale, seed=1, check=False, attrs=attrs)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not even a warning: these keys are no steps
            answers[name] = [run_trial(study, s, seed=1, attrs=attrs) for s in (0.1, 0.9)]
    assert answers["odd"] == answers["plain"]  # the real steps count, the odd keys do not
    assert any(True in pair for pair in answers["plain"])  # and the pruner pruned one


def _artifact(tensor: torch.Tensor) -> bytes:
    """A weights artifact in the bank's format, holding ``tensor`` as a layer's weight."""
    layers = [{"kind": "dense", "name": "fc", "weight": tensor, "bias": None}]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"format": 1, "source": "evil", "is_chain": True, "layers": layers}, buffer)
    return buffer.getvalue()


def _deflated(data: bytes) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


BAD_ARTIFACTS = {
    "stride0": lambda: _artifact(torch.zeros(1).expand(10**6, 10**6)),
    "sparse": lambda: _artifact(torch.ones(4, 3).to_sparse()),
    "meta": lambda: _artifact(torch.empty(4, 3, device="meta")),
    "zeros-bomb": lambda: _deflated(_artifact(torch.zeros(3000, 3000))),
    "garbage": lambda: b"PK\x03\x04 not really a zip",
    "not-a-network": lambda: _artifact(torch.ones(3)) + b"",
}


@pytest.mark.parametrize("kind", STORAGES)
@pytest.mark.parametrize("bad", sorted(BAD_ARTIFACTS))
def test_bad_artifacts_never_escape_should_prune(tmp_path: Path, kind: str, bad: str) -> None:
    artifacts = tmp_path / "artifacts"
    study = _study(tmp_path, kind, _pruner(artifacts))
    for scale in (0.2, 0.5, 0.8):  # good peers, reported by "another worker"
        run_trial(study, scale, seed=0, check=False)
    # a trial whose artifact holds bad tensors, written to the real store and storage
    trial = study.ask()
    path = tmp_path / "evil.sneweights"
    path.write_bytes(BAD_ARTIFACTS[bad]())
    store = FileSystemArtifactStore(str(artifacts))
    artifact_id = upload_artifact(
        artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="x/y"
    )
    for step in (0, 1):
        trial.report(0.0, step)
        trial.set_user_attr(f"sne:weights:{step}", artifact_id)
    # a fresh worker: its pruner has nothing in memory and must read the artifacts
    fresh = _study(tmp_path, kind, _pruner(artifacts))
    frozen = fresh.trials[trial.number]
    with pytest.warns(UserWarning, match=r"SNEPruner: could not read the weights of trial 3"):
        assert fresh.pruner.prune(fresh, frozen) is False
    # the bad trial as a peer of a good one: read, warned about, left out
    with pytest.warns(UserWarning, match=r"could not read the weights of trial 3"):
        answers = run_trial(fresh, 0.9, seed=0)
    assert all(type(a) is bool for a in answers) and answers[0] is False  # step 0: warm-up


def test_report_weights_to_a_folder_replaced_by_a_file_warns(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    study = _study(tmp_path, "sqlite", _pruner(artifacts))
    artifacts.rmdir()
    artifacts.write_text("not a folder")  # the folder is gone: writes fail with an OSError
    with pytest.warns(UserWarning, match=r"could not write the weights of trial 0 at step \d"):
        answers = run_trial(study, 0.5, seed=0)
    assert answers == [False, False]
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert study.trials[0].user_attrs["sne:weights:0"] is None  # in this process only


def _read_only_folder(folder: str, kind: str) -> dict[str, Any]:
    """One trial whose artifact folder is read-only: its should_prune answers, its state and
    the UserWarnings it raised."""
    artifacts = Path(folder) / "artifacts"
    study = _study(Path(folder), kind, _pruner(artifacts))
    artifacts.chmod(0o555)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answers = run_trial(study, 0.5, seed=0)
    finally:
        artifacts.chmod(0o755)
    return {
        "answers": answers,
        "state": study.trials[0].state,
        "warnings": [str(w.message) for w in caught if issubclass(w.category, UserWarning)],
    }


def _as_user(uid: int, gid: int, warm_up: str, folder: str, kind: str) -> dict[str, Any]:
    """``_read_only_folder`` in this forked child of root, run as ``uid``. The scenario runs
    once as root first, in ``warm_up``, so that what it imports lazily (alembic, parts of the
    standard library) is loaded while the interpreter's files are readable: they may sit
    where ``uid`` cannot read them (a pyenv under /root)."""
    torch.set_num_threads(1)  # no OpenMP pool in a forked child
    _read_only_folder(warm_up, kind)  # as root: the folder stays writable, nothing is warned
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"user {uid} cannot write to {folder}: set TMPDIR")
    migrations = Path(optuna.storages.__file__).parent / "_rdb" / "alembic"
    if kind == "sqlite" and not os.access(migrations, os.R_OK | os.X_OK):
        # RDB storage reads Optuna's migration scripts from disk whenever it opens a database;
        # a tox environment (.tox is 0700) or a virtualenv under /root hides them from uid.
        return {"skip": f"user {uid} cannot read {migrations}, which SQLite storage reads"}
    return _read_only_folder(folder, kind)


def _read_only_folder_as_nobody(tmp_path: Path, kind: str) -> dict[str, Any]:
    """Root ignores file permissions: run the scenario in a child that is user 'nobody'."""
    import pwd  # POSIX only

    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root, and there is no 'nobody' user to respect permissions")
    folder = tempfile.mkdtemp(prefix="sne-read-only-")  # tmp_path is root's alone (0700)
    try:
        os.chown(folder, user.pw_uid, user.pw_gid)
        fork = multiprocessing.get_context("fork")
        args = (user.pw_uid, user.pw_gid, str(tmp_path), folder, kind)
        with ProcessPoolExecutor(1, mp_context=fork) as pool:
            result = pool.submit(_as_user, *args).result(timeout=120)
    finally:
        shutil.rmtree(folder)
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions only")
@pytest.mark.parametrize("kind", STORAGES)
def test_report_weights_to_a_read_only_folder_warns(tmp_path: Path, kind: str) -> None:
    if os.geteuid() == 0:
        result = _read_only_folder_as_nobody(tmp_path, kind)
    else:
        result = _read_only_folder(str(tmp_path), kind)
    pattern = r"could not write the weights .*PermissionError"
    assert any(re.search(pattern, w) for w in result["warnings"]), result["warnings"]
    assert result["answers"] == [False, False]
    assert result["state"] == optuna.trial.TrialState.COMPLETE


_FULL_DISK = textwrap.dedent(
    """
    import json, resource, signal, sys, warnings
    import optuna, torch
    from sne_plugin.integrations.optuna import SNEPruner, report_weights
    from sne_plugin.testing import FirstWeightPredictor

    folder = sys.argv[1]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = SNEPruner(FirstWeightPredictor(), n_min_trials=2, artifact_dir=folder + "/art")
    study = optuna.create_study(
        direction="maximize", pruner=pruner, storage=f"sqlite:///{folder}/study.db"
    )
    big = torch.nn.Linear(600, 600)  # 1.4 MB once saved: over the file-size limit below
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trial = study.ask()
        for step in range(2):
            trial.report(0.0, step)
            report_weights(trial, big, step)
            pruned = trial.should_prune()
        study.tell(trial, 0.5)
    print(json.dumps({
        "state": study.trials[0].state.name,
        "pruned": pruned,
        "attr": study.trials[0].user_attrs.get("sne:weights:0", "missing"),
        "warnings": [str(w.message) for w in caught],
    }))
    """
)


@pytest.mark.slow  # a real process: imports torch and optuna afresh
def test_report_weights_to_a_full_folder_warns(tmp_path: Path) -> None:
    # A real write failure: the process may not grow any file past 1 MB (RLIMIT_FSIZE), so
    # writing the 1.4 MB artifact fails with EFBIG, as on a full disk. Run apart, so the
    # limit binds only that process.
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == "COMPLETE" and result["pruned"] is False
    assert result["attr"] is None
    written = [w for w in result["warnings"] if "could not write the weights" in w]
    assert written and "File too large" in written[0], result


def test_report_weights_with_a_locked_database_warns(tmp_path: Path) -> None:
    db = tmp_path / "study.db"
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{db}", engine_kwargs={"connect_args": {"timeout": 0.2}}
    )
    study = optuna.create_study(direction="maximize", pruner=_pruner(), storage=storage)
    trial = study.ask()
    trial.report(0.0, 1)
    lock = sqlite3.connect(db, timeout=0.1)
    lock.execute("BEGIN EXCLUSIVE")  # another process holding the database
    try:
        with pytest.warns(UserWarning, match=r"could not record sne:weights:1 on trial 0"):
            report_weights(trial, net(0.5, 0, 0), 1)
        with pytest.warns(UserWarning, match=r"SNEPruner: deciding on trial 0 failed"):
            assert SNEPruner.prune(study.pruner, study, _frozen(trial)) is False
    finally:
        lock.rollback()
        lock.close()
    study.tell(trial, 0.5)  # the lock released, the trial finishes normally
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


def _frozen(trial: optuna.Trial) -> Any:
    """The trial as the pruner gets it, built without reading the locked storage."""
    return optuna.trial.FrozenTrial(
        number=trial.number,
        state=optuna.trial.TrialState.RUNNING,
        value=None,
        datetime_start=None,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={"sne:weights:1": None},
        system_attrs={},
        intermediate_values={1: 0.0},
        trial_id=trial._trial_id,
    )
