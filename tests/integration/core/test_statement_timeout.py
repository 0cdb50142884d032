"""Every PostgreSQL session gets a statement_timeout (DB_STATEMENT_TIMEOUT_S): a hung query fails instead of
holding a writer or a handler for ever; migrations lift it for their own transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mlcore.config import load_settings
from mlcore.db import create_db_engine, session_scope, upgrade_to_head
from mlcore.errors import DatabaseError

pytestmark = pytest.mark.integration


def test_a_query_over_the_statement_timeout_fails(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url, settings=load_settings(db_statement_timeout_s=0.5))
    try:
        with session_scope(engine) as session:
            assert session.execute(text("SHOW statement_timeout")).scalar() == "500ms"
        with pytest.raises(DatabaseError, match="statement timeout"), session_scope(engine) as session:
            session.execute(text("SELECT pg_sleep(3)"))
        upgrade_to_head(engine)  # the migrations' own transaction is not bound by it
        with session_scope(engine) as session:
            assert session.execute(text("SHOW statement_timeout")).scalar() == "500ms"
    finally:
        engine.dispose()
