"""The training job's side of the operator's retraining loop: feedback rows and the run's offer record (SQLite)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select

from mlcore.config import Settings
from mlcore.db import ExperimentRun, PredictionLog, create_db_engine, session_scope, upgrade_to_head
from mlcore.errors import ConfigurationError
from training_job import challenger
from training_job.cli import parse_flags
from training_job.config import build_config
from training_job.feedback_data import feedback_rows, with_feedback
from training_job.records import RunRecorder

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(text: str, feedback: str | None, *, deployment: str = "ml/web", status: str = "ok", minutes: int = 0):
    return PredictionLog(
        input_text=text,
        input_hash=f"{abs(hash(text)):064d}"[:64],
        predicted_sentiment="positive",
        confidence=0.9,
        model_name="sentiment",
        model_version="1",
        deployment_id=deployment,
        role="stable",
        latency_ms=10.0,
        request_id=uuid.uuid4().hex,
        status=status,
        predicted_at=T0 + timedelta(minutes=minutes),
        feedback_label=feedback,
        feedback_at=T0 + timedelta(minutes=minutes) if feedback else None,
    )


@pytest.fixture
def settings(tmp_path) -> Settings:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_to_head(create_db_engine(url))
    return Settings(database_url=url)


def test_feedback_rows_are_deduplicated_cleaned_and_never_held_out_texts(settings: Settings) -> None:
    engine = create_db_engine(settings=settings)
    with session_scope(engine) as session:
        session.add_all(
            [
                row("Loved it", "negative", minutes=0),
                row("Loved it", "positive", minutes=5),  # same input_hash: the newest feedback wins
                row("Dull and long", "negative"),
                row("A test review", "positive"),  # in the test split: never trained on
                row("no label", None),
                row("failed request", "positive", status="error"),
                row("other deployment", "positive", deployment="ml/other"),
            ]
        )
    feedback = feedback_rows(settings, "ml/web")
    assert sorted(zip(feedback["text"], feedback["label"], strict=True)) == [
        ("A test review", 1),
        ("Dull and long", 0),
        ("Loved it", 1),
    ]
    train = pd.DataFrame({"text": ["Dull and long", "fine"], "label": [0, 1]})
    test = pd.DataFrame({"text": ["A test review"], "label": [1]})
    combined = with_feedback(train, [test], feedback)
    assert list(combined["text"]) == ["Dull and long", "fine", "Loved it"]
    assert list(combined["label"]) == [0, 1, 1]


def test_the_run_says_whether_its_challenger_is_offered(settings: Settings) -> None:
    engine = create_db_engine(settings=settings)
    extra = {"retraining_job": "ml/web-retrain-1-1"}
    recorder = RunRecorder(engine)
    recorder.start(
        "r1",
        experiment_name="e",
        run_name="r1",
        params={},
        registered_model_name="sentiment",
        tags=challenger.run_tags(extra),
    )
    recorder.finish("r1", "FINISHED", model_version="2", storage_uri="s3://m/2", is_champion=False)
    challenger.record_offer(engine, "r1", False, "challenger 0.80 <= champion v1 0.88", extra)
    with session_scope(engine) as session:
        tags = session.scalar(select(ExperimentRun.tags).where(ExperimentRun.run_id == "r1"))
    assert tags == {
        "retraining_job": "ml/web-retrain-1-1",
        "offered": "false",
        "champion_decision": "challenger 0.80 <= champion v1 0.88",
    }
    assert challenger.run_tags({}) == {}


def test_loop_flags_reach_the_config() -> None:
    flags = parse_flags(["--include-feedback", "--feedback-deployment", "ml/web", "--retraining-job", "ml/j"])
    config = build_config(Settings(), flags)
    assert config.extra == {"include_feedback": True, "feedback_deployment": "ml/web", "retraining_job": "ml/j"}
    with pytest.raises(ConfigurationError, match="--feedback-deployment"):
        build_config(Settings(), parse_flags(["--include-feedback"]))


def _finished(recorder: RunRecorder, run_id: str, job: str | None, registry_version: str | None, champion: bool):
    recorder.start(
        run_id,
        experiment_name="e",
        run_name=run_id,
        params={},
        registered_model_name="sentiment",
        tags=challenger.run_tags({"retraining_job": job} if job else {}),
    )
    recorder.finish(
        run_id,
        "FINISHED",
        model_version=run_id,
        storage_uri=f"s3://m/{run_id}",
        is_champion=champion,
        tags={"mlflow_model_version": registry_version},
    )


def test_a_promoted_candidate_becomes_champion_only_when_the_loop_promotes_it(settings: Settings) -> None:
    engine = create_db_engine(settings=settings)
    recorder = RunRecorder(engine)
    _finished(recorder, "v1", None, "1", champion=True)  # a manual run: champion at once
    _finished(recorder, "v2", "ml/web-retrain-1-1", "2", champion=False)  # a loop's candidate: offered only
    moved: list[tuple[str, str, str]] = []

    def champions() -> list[str]:
        with session_scope(engine) as session:
            return list(session.scalars(select(ExperimentRun.run_id).where(ExperimentRun.is_champion.is_(True))))

    assert champions() == ["v1"]
    said = challenger.promote_champion(engine, "ml/web-retrain-1-1", lambda *a: moved.append(a))
    assert said == "sentiment version 2 (run v2) is champion" and champions() == ["v2"]
    assert moved == [("sentiment", "2", "promoted by the operator's retraining loop (ml/web-retrain-1-1)")]
    challenger.promote_champion(engine, "ml/web-retrain-1-1", lambda *a: moved.append(a))  # a re-run: the same
    assert champions() == ["v2"] and moved[1] == moved[0]
    with pytest.raises(ConfigurationError, match="no finished run of retraining Job ml/web-retrain-9-1"):
        challenger.promote_champion(engine, "ml/web-retrain-9-1", lambda *a: moved.append(a))
    _finished(recorder, "v3", "ml/web-retrain-2-1", None, champion=False)  # --no-register: nothing to move
    with pytest.raises(ConfigurationError, match="registered no MLflow model version"):
        challenger.promote_champion(engine, "ml/web-retrain-2-1", lambda *a: moved.append(a))
    assert len(moved) == 2 and parse_flags(["--promote-champion", "ml/j"])["promote_champion"] == "ml/j"
