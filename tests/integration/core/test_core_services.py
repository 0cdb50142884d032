"""The shared core against the real services: Alembic on PostgreSQL, storage on the S3 server."""

import uuid

import pytest
from sqlalchemy import select, text

from mlcore.db import ModelDeployment, PredictionLog, create_db_engine, session_scope, upgrade_to_head
from mlcore.db.migrate import schema_differences
from mlcore.errors import ManifestError, StorageError
from mlcore.storage import (
    fetch_version,
    list_versions,
    next_version,
    open_storage,
    open_version,
    publish_directory,
    verify_version,
)

pytestmark = pytest.mark.integration


def test_postgres_migrations_agree_with_models(postgres_url):
    engine = create_db_engine(postgres_url)
    upgrade_to_head(engine)
    upgrade_to_head(engine)
    assert schema_differences(engine) == []
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'prediction_logs'"
                )
            ).all()
        )
    assert kinds["probabilities"] == "jsonb" and kinds["id"] == "uuid"
    engine.dispose()


def test_postgres_constraints_hold(postgres_url):
    engine = create_db_engine(postgres_url)
    upgrade_to_head(engine)
    with session_scope(engine) as session:
        session.add(
            PredictionLog(
                id=uuid.uuid4(),
                input_text="t",
                input_hash="h",
                model_name="m",
                model_version="1",
                latency_ms=1.0,
                probabilities={"p": [0.1, 0.9]},
            )
        )
    with session_scope(engine) as session:
        assert session.execute(select(PredictionLog.probabilities)).scalar_one() == {"p": [0.1, 0.9]}
    row = dict(deployment_id="ns/md", rollout_id="r1", deployment_type="canary", model_name="m", model_version="2")
    with session_scope(engine) as session:
        session.add(ModelDeployment(**row))
    from mlcore.errors import DatabaseError

    with pytest.raises(DatabaseError), session_scope(engine) as session:
        session.add(ModelDeployment(**row))  # the idempotency key refuses a duplicate event
    with pytest.raises(DatabaseError), session_scope(engine) as session:
        session.add(ModelDeployment(**{**row, "rollout_id": "r2", "deployment_type": "blue"}))
    engine.dispose()


def test_s3_publish_fetch_and_refusals(s3_bucket, tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    (source / "config.json").write_text('{"x": 1}')
    (source / "weights.bin").write_bytes(bytes(range(256)) * 4000)
    storage = open_storage(s3_bucket.uri())
    assert next_version(storage, "models/m") == "1"
    publish_directory(storage, "models/m/1", source, metadata={"f1": 0.9})
    assert list_versions(storage, "models/m") == ["1"]
    assert verify_version(storage, "models/m/1").metadata == {"f1": 0.9}

    versioned, prefix = open_version(s3_bucket.uri("models/m/1"))
    fetch_version(versioned, prefix, tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (source / "weights.bin").read_bytes()

    # An upload that died before its manifest: nothing readable, and its number is never reused.
    storage.put_file("models/m/2/weights.bin", source / "weights.bin")
    with pytest.raises(ManifestError, match=r"no MANIFEST\.json"):
        verify_version(storage, "models/m/2")
    assert next_version(storage, "models/m") == "3"

    # Corruption after publishing is caught by size (cheap) and by checksum (on fetch).
    storage.put_bytes("models/m/1/weights.bin", b"truncated")
    with pytest.raises(ManifestError, match="bytes"):
        verify_version(storage, "models/m/1")
    storage.put_bytes("models/m/1/weights.bin", bytes(reversed(range(256))) * 4000)
    with pytest.raises(ManifestError, match="checksum"):
        fetch_version(storage, "models/m/1", tmp_path / "out2")

    storage.put_bytes("reports/r.html", b"<html></html>", content_type="text/html; charset=utf-8")
    head = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key="reports/r.html")
    assert head["ContentType"] == "text/html; charset=utf-8"

    with pytest.raises(StorageError, match="not found"):
        storage.get_bytes("models/none")
    assert not storage.exists("models/none")
