from __future__ import annotations

from pathlib import Path

import pytest

from sne_plugin.cli import main
from sne_plugin.research.bench.methods import METHODS
from sne_plugin.research.bench.report import BEGIN, END
from sne_plugin.research.bench.tasks import select_tasks


@pytest.mark.slow
def test_smoke_bench_writes_tables(smoke_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "BENCH.md"
    out.write_text(f"# Title\n\nkept above\n\n{BEGIN}\nold\n{END}\n\n## Other\nkept below\n")
    png = tmp_path / "docs" / "bench_scatter.png"
    rc = main(
        [
            "bench",
            "--smoke",
            "--seeds",
            "1",
            "--out",
            str(out),
            "--png",
            str(png),
            "--cache",
            str(smoke_cache),
            "--workers",
            "1",
            "--quiet",
        ]
    )
    assert rc == 0
    text = out.read_text()
    assert "kept above" in text and "kept below" in text and "\nold\n" not in text
    block = text.split(BEGIN)[1].split(END)[0]
    assert "Command: `sne bench" in block and "Machine:" in block and "torch" in block
    header = "| task | " + " | ".join(m.label for m in METHODS.values()) + " |"
    assert header in block
    for task in select_tasks("smoke"):
        assert f"### {task.name}:" in block
    assert "n/a: needs one fixed architecture" in block  # FlatMLP across architectures
    assert "n/a: the accuracy at the weights' epoch is the target itself" in block
    assert "| method | tau | tau (acc >= 0.2) | R^2 | MAE | fit s | predict nets/s |" in block
    assert png.stat().st_size > 1000


def test_unknown_method(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(
        [
            "bench",
            "--smoke",
            "--methods",
            "statn",
            "--cache",
            str(tmp_path),
            "--out",
            str(tmp_path / "B.md"),
        ]
    )
    assert rc == 2
    assert "unknown method 'statn'; did you mean 'statnn'?" in capsys.readouterr().err


def test_bad_seeds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["bench", "--smoke", "--seeds", "0", "--cache", str(tmp_path)]) == 2
    assert "expected --seeds and --workers >= 1, got 0 and 2" in capsys.readouterr().err
    assert main(["bench", "--smoke", "--first-seed", "-1", "--cache", str(tmp_path)]) == 2
    assert "expected --first-seed >= 0, got -1" in capsys.readouterr().err
