import io

import pytest

from mlcore.config import get_settings
from mlpipeline_cli.__main__ import build_parser, main
from mlpipeline_cli.client import LoadResult, accuracy, output, v2_payload
from mlpipeline_cli.demo import DemoState
from mlpipeline_cli.stages import StageFailed, StageRunner

pytestmark = pytest.mark.unit


def test_stage_runner_prints_one_line_per_stage_and_names_the_failure():
    out = io.StringIO()
    runner = StageRunner(total=2, out=out)
    assert runner.run("first", lambda: 41 + 1, done=lambda r: f"got {r}") == 42
    with pytest.raises(StageFailed) as info:
        runner.run("second", lambda: 1 / 0)
    assert info.value.stage == "second" and "ZeroDivisionError" in info.value.reason
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] first ..." and lines[1].startswith("[1/2] first ok (") and lines[1].endswith("got 42")
    assert lines[2] == "[2/2] second ..." and len(lines) == 3
    assert set(runner.timings) == {"first"}


def test_demo_state_roundtrip(tmp_path):
    state = DemoState.load(tmp_path / "s.json")
    assert state.model_uri is None
    state.model_uri, state.model_version = "file:///m/1", "1"
    state.save()
    again = DemoState.load(tmp_path / "s.json")
    assert (again.model_uri, again.model_version) == ("file:///m/1", "1")


def test_v2_payload_and_output_helpers():
    body = v2_payload(["a", "b"], return_probabilities=True)
    assert body["inputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}
    assert body["parameters"] == {"return_probabilities": True}
    assert output({"outputs": [{"name": "label", "data": ["positive"]}]}, "label") == ["positive"]
    with pytest.raises(KeyError):
        output({"outputs": []}, "label")
    result = LoadResult(labels=["x"] * 4, latencies_ms=[1.0, 2.0, 3.0, 4.0], errors=0)
    assert result.percentile(50) == pytest.approx(2.5)


def test_parser_lists_every_subcommand():
    help_text = build_parser().format_help()
    for command in ["train", "serve", "drift", "operator", "demo", "db"]:
        assert command in help_text


def test_db_upgrade_and_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLP_HOME", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DB_HOST", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["db", "check"]) == 1
        assert main(["db", "upgrade"]) == 0
        assert main(["db", "check"]) == 0
    finally:
        get_settings.cache_clear()
    assert "schema matches the models" in capsys.readouterr().out


def test_a_skipped_stage_takes_its_number_and_says_why():
    out = io.StringIO()
    runner = StageRunner(total=2, out=out)
    runner.skip("serve the candidate", "candidate version 2 not offered")
    runner.run("summarise", lambda: None)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] serve the candidate skipped — candidate version 2 not offered"
    assert lines[1] == "[2/2] summarise ..." and set(runner.timings) == {"summarise"}


def test_accuracy_counts_a_failed_answer_as_wrong():
    assert accuracy(["positive", "", "negative", "negative"], ["positive", "negative", "negative", "positive"]) == 0.5
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy(["positive"], ["positive", "negative"])
