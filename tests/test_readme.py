"""The README's Python snippets run, in order, in one namespace (as a reader would paste
them), in a scratch folder; a block preceded by ``<!-- not run: reason -->`` is skipped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(?:<!-- not run: (?P<reason>[^>]*) -->\n)?```python\n(?P<code>.*?)```", re.S)


def _blocks() -> list[tuple[str, str | None]]:
    return [(m["code"], m["reason"]) for m in _BLOCK.finditer(README.read_text())]


def test_the_readme_has_runnable_snippets() -> None:
    blocks = _blocks()
    assert len(blocks) >= 4
    assert sum(reason is None for _, reason in blocks) >= 2
    assert all(reason.strip() for _, reason in blocks if reason is not None)


@pytest.mark.slow
def test_readme_snippets_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the snippets write runs/my_zoo and regressor.sne here
    namespace: dict[str, object] = {"__name__": "readme"}
    for i, (code, reason) in enumerate(_blocks()):
        if reason is None:
            exec(compile(code, f"README.md python block {i}", "exec"), namespace)
    assert (tmp_path / "regressor.sne").exists()
