"""Every reader path ends in a result or an SNEError: a bounded property run in CI.

The longer run is ``python -m sne_plugin.research.bench.fuzz --examples N``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings

from sne_plugin.research.bench import fuzz

STRATEGIES = fuzz.strategies()
BOUNDED = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@BOUNDED
@given(STRATEGIES["onnx"])
def test_random_onnx_graphs(case: Callable[[], str]) -> None:
    assert case() in ("ok", "SNEError")


@BOUNDED
@given(STRATEGIES["state_dict"])
def test_random_state_dicts(case: Callable[[], str]) -> None:
    assert case() in ("ok", "SNEError")


@BOUNDED
@given(STRATEGIES["mutant"])
def test_byte_mutants_of_real_exported_files(case: Callable[[], str]) -> None:
    assert case() in ("ok", "SNEError")


def test_the_script_counts_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz.main(["--examples", "5", "--families", "state_dict"]) == 0
    out = capsys.readouterr().out
    assert "state_dict: 5 cases" in out and "escaped: 0" in out


def test_escapes_are_reported() -> None:
    def broken() -> object:
        raise KeyError("x")

    with pytest.raises(fuzz.Escaped, match=r"KeyError at test_fuzz\.py:\d+"):
        fuzz.outcome(broken)
