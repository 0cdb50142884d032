import uuid

import pytest
from sqlalchemy import select

from mlcore.db import PredictionLog, create_db_engine, session_scope, upgrade_to_head
from mlcore.db.migrate import schema_differences
from mlcore.db.safety import count_rows, validate_table_name
from mlcore.errors import DatabaseError, SecurityError

pytestmark = pytest.mark.unit


def test_sqlite_migrations_agree_with_models(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade_to_head(engine)
    upgrade_to_head(engine)  # idempotent
    assert schema_differences(engine) == []


def test_roundtrip_and_row_count(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade_to_head(engine)
    row_id = uuid.uuid4()
    with session_scope(engine) as session:
        session.add(
            PredictionLog(
                id=row_id,
                input_text="great",
                input_hash="0" * 64,
                predicted_sentiment="positive",
                confidence=0.9,
                probabilities={"positive": 0.9, "negative": 0.1},
                model_name="m",
                model_version="1",
                latency_ms=1.5,
            )
        )
    with session_scope(engine) as session:
        row = session.execute(select(PredictionLog).where(PredictionLog.id == row_id)).scalar_one()
        assert row.probabilities == {"positive": 0.9, "negative": 0.1} and row.status == "ok"
        assert count_rows(session, "prediction_logs") == 1


@pytest.mark.parametrize("name", ["prediction_logs; drop table x", "Prediction_Logs", "pg_user", "", "a" * 70])
def test_dynamic_table_names_are_whitelisted(name):
    with pytest.raises(SecurityError):
        validate_table_name(name)


def test_unreachable_database_raises_database_error():
    engine = create_db_engine("postgresql+psycopg://u:pw@127.0.0.1:1/db")
    with pytest.raises(DatabaseError, match="unavailable"), session_scope(engine) as session:
        session.execute(select(1))
