"""pyproject.toml lists every package of the tree, so a wheel (not only an editable
install) holds all of it."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "sne_plugin").rglob("__init__.py")
        if "integrations" not in init.relative_to(ROOT).parts  # the link, listed below
    }
    found |= {
        "sne_plugin." + ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "integrations").rglob("__init__.py")
    }
    assert found == listed
