"""Every public class of the package has a runnable example in its docstring, and the
package's docstrings run as doctests (pyproject: ``--doctest-modules``, ``sne_plugin`` among
the ``testpaths``).

Public: each module whose dotted name has no part starting with ``_``, its ``__all__`` (or,
without one, the classes it defines under names without ``_``). Left out:
``sne_plugin.research``, the harness the project builds its evidence with (its docstring:
"not what a user needs to predict or prune"); integrations whose framework is not installed
are skipped, as their doctests are (conftest.py).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
from pathlib import Path

import pytest

import sne_plugin
from sne_plugin.errors import SNEError

PACKAGE = Path(sne_plugin.__file__).parent
LEFT_OUT = ("sne_plugin.research",)


def public_modules() -> list[str]:
    """Dotted names of the public modules, found on disk (nothing imported); the
    ``integrations`` link is followed."""
    names = []
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        parts = Path(folder).relative_to(PACKAGE.parent).parts
        for file in sorted(files):
            if file.endswith(".py") and (file == "__init__.py" or not file.startswith("_")):
                name = ".".join(parts if file == "__init__.py" else (*parts, file[:-3]))
                if not name.startswith(LEFT_OUT):
                    names.append(name)
    return names


def public_classes(module: object) -> dict[str, type]:
    exported = getattr(module, "__all__", None)
    if exported is None:
        candidates = {
            name: obj
            for name, obj in vars(module).items()
            if getattr(obj, "__module__", None) == getattr(module, "__name__", None)
        }
        exported = [name for name in candidates if not name.startswith("_")]
    objects = {name: getattr(module, name) for name in exported}
    return {name: obj for name, obj in objects.items() if inspect.isclass(obj)}


def has_example(cls: type) -> bool:
    """Whether the class's own docstring holds a doctest example (``>>>`` with a source)."""
    return bool(doctest.DocTestParser().get_examples(cls.__doc__ or ""))


@pytest.mark.parametrize("name", public_modules())
def test_every_public_class_has_a_docstring_example(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except (ImportError, SNEError) as exc:  # an integration's extra is not installed
        pytest.skip(f"{name} does not import here: {exc}")
    missing = sorted(n for n, cls in public_classes(module).items() if not has_example(cls))
    assert not missing, (
        f"{name}: public classes without a runnable example (a '>>>' line in the class "
        f"docstring, run as a doctest): {missing}"
    )


def test_the_walk_finds_the_modules_that_need_examples() -> None:
    modules = public_modules()
    for name in (
        "sne_plugin",
        "sne_plugin.weights",
        "sne_plugin.encoder",
        "sne_plugin.encoder.plan",
        "sne_plugin.integrations.lightning",
        "sne_plugin.testing.optuna",
    ):
        assert name in modules
    assert not [m for m in modules if m.startswith(LEFT_OUT) or "._" in m]


def test_a_class_without_an_example_is_caught() -> None:
    class Documented:
        """Text.

        >>> 1 + 1
        2
        """

    class Undocumented:
        """Text that mentions >>> without an example."""

    assert has_example(Documented)
    assert not has_example(Undocumented)


def test_the_package_doctests_are_collected(request: pytest.FixtureRequest) -> None:
    assert request.config.getoption("doctestmodules")
    assert "sne_plugin" in request.config.getini("testpaths")
