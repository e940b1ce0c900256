"""Every optional import names a pip extra that exists in pyproject.toml and brings it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from sne_plugin._imports import optional_import

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
# Import names whose distribution on PyPI is called otherwise.
DISTRIBUTION = {"PIL": "pillow"}


def _extras() -> dict[str, set[str]]:
    """Each extra -> the distributions it installs, self-references (sne-plugin[x]) resolved."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    raw = table["optional-dependencies"]

    def names(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out: set[str] = set()
        for req in raw[extra]:
            inner = re.fullmatch(r"sne-plugin\[(.+)\]", req.strip())
            if inner:
                for sub in inner.group(1).split(","):
                    out |= names(sub.strip(), seen | {extra}) if sub not in seen else set()
            else:
                out.add(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower())
        return out

    return {extra: names(extra) for extra in raw}


def _calls() -> list[tuple[str, str, str | None]]:
    """(file:line, module, extra) of every optional_import call in the installed package."""
    found = []
    for folder in ("sne_plugin", "integrations"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.is_relative_to(ROOT / "sne_plugin" / "integrations"):
                continue  # the link to integrations/, read there
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "optional_import":
                    extra = next((k.value for k in node.keywords if k.arg == "extra"), None)
                    module = node.args[0]
                    assert isinstance(module, ast.Constant), f"{path}:{node.lineno}"
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.append((where, module.value, getattr(extra, "value", None)))
    return found


def test_every_optional_import_names_an_extra_that_installs_it() -> None:
    extras, calls = _extras(), _calls()
    assert len(calls) >= 8  # onnx, matplotlib, PIL, nfn, optuna call sites at least
    for where, module, extra in calls:
        top = module.split(".")[0]
        assert extra in extras, f"{where}: extra {extra!r} is not in pyproject.toml"
        assert DISTRIBUTION.get(top, top).lower() in extras[extra], (
            f"{where}: pip install 'sne-plugin[{extra}]' does not install {top!r}"
        )


def test_a_missing_package_names_its_extra() -> None:
    with pytest.raises(ImportError, match=r"pip install 'sne-plugin\[zoo\]'"):
        optional_import("no_such_module_anywhere", extra="zoo")
