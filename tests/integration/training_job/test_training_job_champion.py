"""The MLflow champion alias in the operator's retraining loop, against a real MLflow server: a loop's candidate
is registered as challenger and does not take champion when it beats it; `--promote-champion` (the Job the operator
runs once the candidate is promoted) moves it."""

from __future__ import annotations

import uuid

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import select

from mlcore.config import get_settings
from mlcore.db import ExperimentRun, create_db_engine, session_scope, upgrade_to_head
from training_job import challenger, cli
from training_job.records import RunRecorder
from training_job.tracking import CHALLENGER, CHAMPION, Tracker

pytestmark = pytest.mark.integration

SPLIT = {"test_split_hash": "h" * 64}


def _run(tracker: Tracker, recorder: RunRecorder, accuracy: float, job: str | None) -> tuple[str, str, bool]:
    """One training run's registry part, as the pipeline does it: register, decide, record."""
    extra = {"retraining_job": job} if job else {}
    with tracker.run(f"run-{uuid.uuid4().hex[:6]}", tags=challenger.run_tags(extra)) as run_id:
        recorder.start(
            run_id,
            experiment_name=tracker.experiment_name,
            run_name=run_id,
            params={},
            registered_model_name="sentiment",
            tags=challenger.run_tags(extra),
        )
        version = tracker.register(run_id, "sentiment", {**SPLIT, "test_accuracy": f"{accuracy:.6f}"})
        decision = tracker.decide_champion(
            "sentiment", version, accuracy, SPLIT["test_split_hash"], rescore=lambda _: 0.0,
            take_alias=not challenger.in_loop(extra),
        )  # fmt: skip
    recorder.finish(
        run_id,
        "FINISHED",
        model_version=version,
        storage_uri=f"s3://models/sentiment/{version}",
        is_champion=decision.promoted and not challenger.in_loop(extra),
        tags={"mlflow_model_version": version},
    )
    challenger.record_offer(recorder.engine, run_id, decision.promoted, decision.reason, extra)
    return run_id, version, decision.promoted


def test_the_champion_moves_when_the_loop_promotes_not_when_it_trains(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, mlflow_server: str
) -> None:
    engine = create_db_engine(postgres_url)
    upgrade_to_head(engine)
    tracker = Tracker(mlflow_server, f"champion-{uuid.uuid4().hex[:8]}")
    client = MlflowClient(mlflow_server)
    recorder = RunRecorder(engine)
    _, first, _ = _run(tracker, recorder, 0.80, None)  # a manual run: champion at once (none before)
    assert client.get_model_version_by_alias("sentiment", CHAMPION).version == first

    job = f"ml/web-retrain-{uuid.uuid4().hex[:6]}-1"
    run_id, candidate, offered = _run(tracker, recorder, 0.90, job)  # the loop's candidate: better, offered
    assert offered
    assert client.get_model_version_by_alias("sentiment", CHALLENGER).version == candidate
    assert client.get_model_version_by_alias("sentiment", CHAMPION).version == first  # not before its rollout
    assert client.get_run(run_id).data.tags["promoted_to_champion"] == "False"

    # The candidate was promoted: the operator's Job runs the training image with --promote-champion.
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT", tracker.experiment_name)
    get_settings.cache_clear()
    try:
        assert cli.main(["--promote-champion", job]) == 0
        assert cli.main(["--promote-champion", job]) == 0  # a re-run after an operator restart: the same
    finally:
        get_settings.cache_clear()
    champion = client.get_model_version_by_alias("sentiment", CHAMPION)
    assert champion.version == candidate and job in champion.tags["champion_by"]
    with session_scope(engine) as session:
        flagged = session.scalars(
            select(ExperimentRun.run_id).where(
                ExperimentRun.registered_model_name == "sentiment", ExperimentRun.is_champion.is_(True)
            )
        ).all()
    assert flagged == [run_id]
    engine.dispose()
