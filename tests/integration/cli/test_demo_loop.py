"""`mlpipeline demo` end to end in a reduced form: a tiny model, few samples, the real components as processes.

The full command (README's first) trains the quick model; this runs the same stages with a 2-layer model so CI
proves the loop keeps working: train -> publish -> serve -> v2 traffic + bad requests -> drift -> summary,
and that a second run reuses the published model and, with --loop, closes the retraining loop on it: drifted
snippets -> alert -> retraining Job -> candidate -> served or recorded as not offered.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mlcore.db import (
    DriftRun,
    ExperimentRun,
    ModelDeployment,
    MonitoringAlert,
    PredictionLog,
    create_db_engine,
    session_scope,
)
from mlcore.storage import list_versions, open_storage
from mlpipeline_cli.demo import DemoState
from tests.fixtures.models import make_tiny_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUESTS = 120
JOB = "local/sentiment-retrain-1-1"
SNIPPETS = 60


def _demo(home: Path, workdir: Path, model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLP_HOME": str(home),
        "DRIFT_MIN_ROWS": "50",
        "LOG_FORMAT": "text",
    }
    for name in ("DATABASE_URL", "DB_HOST", "STORAGE_URI", "S3_BUCKET", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    train_args = (
        f"--model {model} --max-train-samples 64 --max-validation-samples 32 --max-test-samples 64 "
        "--max-length 32 --epochs 1 --batch-size 16 --reference-rows 100"
    )
    command = [sys.executable, "-m", "mlpipeline_cli", "demo", "--requests", str(REQUESTS), "--train-args", train_args]
    return subprocess.run(
        [*command, *extra], cwd=workdir, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def test_demo_runs_the_whole_loop_reuses_its_model_and_closes_the_retraining_loop(tmp_path):
    model = make_tiny_model(tmp_path / "tiny")
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir()

    first = _demo(home, workdir, model)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    for stage in [
        "prepare offline data and model",
        "train a quick model",
        "start the predictor",
        "send held-out reviews",
        "run the drift job",
        "summarise",
    ]:
        assert f"{stage} ok (" in first.stdout
    assert f"{REQUESTS} answered, 0 failed, 5 bad requests refused" in first.stdout
    assert "== ml-pipeline demo summary ==" in first.stdout
    assert (workdir / "models" / "final" / "config.json").is_file()

    storage = open_storage((home / "storage").as_uri())
    assert list_versions(storage, "models/sentiment") == ["1"]
    engine = create_db_engine(f"sqlite:///{home / 'mlpipeline.db'}")
    with session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(PredictionLog)).scalar_one() == REQUESTS
        assert session.execute(select(func.count()).select_from(ExperimentRun)).scalar_one() >= 1
        run = session.execute(select(DriftRun)).scalars().one()
        assert run.status == "success" and run.rows == REQUESTS and run.report_uri
    report = Path(run.report_uri.removeprefix("file://"))
    assert report.is_file() and report.stat().st_size > 10_000

    # The second run reuses the model, then runs the closed loop (--loop) on it.
    second = _demo(home, workdir, model, "--loop", "--loop-requests", str(SNIPPETS))
    out = second.stdout
    assert second.returncode == 0, out[-6000:] + second.stderr[-4000:]
    assert "reusing" in out
    with session_scope(engine) as session:
        runs = session.execute(select(DriftRun).order_by(DriftRun.started_at)).scalars().all()
        # The watermark: each drift run sees only the traffic since the one before.
        assert [r.rows for r in runs] == [REQUESTS, REQUESTS, 2 * SNIPPETS]
    engine.dispose()
    _check_the_loop(out, home, storage)


def _check_the_loop(out: str, home: Path, storage: Any) -> None:
    """Short snippets with feedback drift the text lengths, the drift job's alert starts the operator's loop, the
    training Job runs as a process, and its verdict decides what serves."""
    for stage in [
        "send drifted traffic (short snippets) with feedback",
        "run the drift job on it",
        "start retraining on the alerts",
        "run the retraining Job",
    ]:
        assert f"{stage} ok (" in out
    assert f"{SNIPPETS} feedback labels" in out
    engine = create_db_engine(f"sqlite:///{home / 'mlpipeline.db'}")
    with session_scope(engine) as session:
        alerts = session.execute(select(MonitoringAlert).where(MonitoringAlert.alert_type == "drift")).scalars().all()
        assert alerts, "the drifted snippets raised no drift alert"
        feedback = session.execute(
            select(func.count()).select_from(PredictionLog).where(PredictionLog.feedback_label.is_not(None))
        ).scalar_one()
        assert feedback == SNIPPETS
        rows = {
            (r.rollout_id, r.deployment_type, r.model_version, r.outcome)
            for r in session.execute(select(ModelDeployment)).scalars()
        }
        (run,) = session.execute(
            select(ExperimentRun).where(ExperimentRun.tags["retraining_job"].as_string() == JOB)
        ).scalars()
        offered = str(run.tags["offered"]).lower() == "true"
    engine.dispose()
    assert ("retrain-1-a1", "retraining", "1", "trained") in rows
    assert list_versions(storage, "models/sentiment") == ["1", "2"]
    state = DemoState.load(home / "demo-state.json")
    assert state.retraining is not None and state.retraining["jobName"] == "sentiment-retrain-1-1"
    if offered:  # served: the alerts it answers resolved, naming the loop; the next demo serves version 2
        assert "serve the candidate ok (" in out and "RetrainingPromoted" in out
        assert ("retrain-1-candidate", "retraining", "2", "promoted") in rows
        assert ("local-2", "stable", "2", "serving") in rows
        assert all(a.resolved and a.details["resolvedBy"]["job"] == JOB for a in alerts)
        assert '"outcome": "promoted"' in out and " -> " in out
        assert state.model_version == "2"
    else:  # recorded and not served: the alerts stay open, version 1 still serves
        assert "serve the candidate skipped" in out and "CandidateNotOffered" in out
        assert ("retrain-1-candidate", "retraining", "2", "not_offered") in rows
        assert not any(a.resolved for a in alerts)
        assert '"outcome": "not_offered"' in out and state.model_version == "1"


def test_a_failing_stage_is_named_and_stops_the_rest(tmp_path):
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir()
    failed = _demo(home, workdir, tmp_path / "no-such-model")
    assert failed.returncode == 1
    assert "FAILED at stage 'train a quick model' failed" in failed.stderr
    assert "start the predictor" not in failed.stdout
