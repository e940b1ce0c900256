"""tox's inline plugin for this project: no CUDA torch by accident.

On Linux, PyPI's ``torch==2.13.0`` (the pin in constraints.txt) is the CUDA build, which
brings about 20 nvidia packages (GBs). Before an environment installs the package, this asks
pip, offline, which torch the constraints give for the environment's interpreter from the
local wheels (pip's ``find-links``: ``PIP_FIND_LINKS`` or pip's configuration). Unless that is
a CPU build (version ``+cpu``), the environment is skipped, saying why: here that is every
Python but 3.11, whose CPU wheel lies on disk. ``SNE_TOX_ANY_TORCH=1`` lets pip take the
torch it finds (a machine with a GPU, or a CPU index in pip's configuration).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tox.plugin import impl
from tox.tox_env.errors import Skip
from tox.tox_env.python.api import Python
from tox.tox_env.runner import RunToxEnv

CONSTRAINTS = Path(__file__).with_name("constraints.txt")
_CHECKED: set[str] = set()  # environments whose torch was checked in this run


@impl
def tox_on_install(tox_env: Any, arguments: Any, section: str, of_type: str) -> None:
    if sys.platform != "linux" or os.environ.get("SNE_TOX_ANY_TORCH") == "1":
        return
    if not (isinstance(tox_env, RunToxEnv) and isinstance(tox_env, Python)):
        return  # the packaging environment: no torch there
    if tox_env.conf.get("skip_install", bool):
        return  # lint: no torch there
    if tox_env.name in _CHECKED:
        return
    _CHECKED.add(tox_env.name)
    python = tox_env.env_python()
    torch = _local_torch(python)
    if torch is None or "+cpu" not in torch:
        found = f"only torch {torch}" if torch else "no torch wheel"
        raise Skip(
            f"no CPU torch for Python {_version(tox_env)} among the local wheels "
            f"({found} matches constraints.txt offline); PyPI's torch for Linux is the CUDA "
            "build (GBs). Put a CPU wheel in pip's find-links, or set SNE_TOX_ANY_TORCH=1 to "
            "take the torch pip finds"
        )


def _local_torch(python: Path) -> str | None:
    """The torch version pip picks for ``python`` from local wheels alone, or None."""
    command = [str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--no-index"]
    command += ["--no-deps", "--ignore-installed", "--report", "-", "-c", str(CONSTRAINTS), "torch"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    installs = json.loads(done.stdout or "{}").get("install", [])
    return str(installs[0]["metadata"]["version"]) if installs else None


def _version(tox_env: Python) -> str:
    info = tox_env.base_python.version_info
    return f"{info.major}.{info.minor}"
