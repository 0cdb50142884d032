"""`make run` and the demo print how long each stage took."""

from __future__ import annotations

import io

import pytest

from mlpipeline_cli.demo import _print_timings, setup_timings
from mlpipeline_cli.stages import StageRunner

pytestmark = pytest.mark.unit


def test_setup_timings_from_make() -> None:
    assert setup_timings("venv + dependencies=95,offline assets=4") == {
        "venv + dependencies": 95.0,
        "offline assets": 4.0,
    }
    assert setup_timings(None) == {}
    assert setup_timings("garbage,=3,x=y") == {}


def test_the_closing_table_lists_make_steps_then_demo_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_SETUP_TIMINGS", "venv + dependencies=90,offline assets=5")
    runner = StageRunner(total=2, out=io.StringIO())
    runner.run("prepare", lambda: None)
    runner.run("train a quick model", lambda: None)
    out = io.StringIO()
    _print_timings(runner.timings, out)
    lines = out.getvalue().splitlines()
    assert lines[1] == "== time per stage =="
    assert [line.split("  ")[0].strip() for line in lines[2:]] == [
        "venv + dependencies",
        "offline assets",
        "prepare",
        "train a quick model",
        "total",
    ]
    assert lines[-1].endswith(" s") and float(lines[-1].split()[-2]) >= 95.0
