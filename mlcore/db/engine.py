"""Engine with pooling, and a transactional session scope that speaks mlcore errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from mlcore.config import Settings, get_settings
from mlcore.errors import DatabaseError


def create_db_engine(url: str | URL | None = None, settings: Settings | None = None, **kwargs: Any) -> Engine:
    """An engine for PostgreSQL (pooled, pre-pinged, recycled) or the embedded SQLite file."""
    settings = settings or get_settings()
    target = make_url(url) if url is not None else settings.sqlalchemy_url
    if target.drivername in {"postgresql", "postgres"}:
        target = target.set(drivername="postgresql+psycopg")
    if target.get_backend_name() == "sqlite":
        if target.database and target.database != ":memory:":
            from pathlib import Path

            Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(target, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_pre_ping": True,  # a restarted Postgres must not cost the next request an error
        "pool_recycle": settings.db_pool_recycle_s,
        "pool_timeout": settings.db_pool_timeout_s,
        "connect_args": {"connect_timeout": 5, **_statement_timeout(settings.db_statement_timeout_s)},
    }
    options.update(kwargs)
    return create_engine(target, **options)


def _statement_timeout(seconds: float) -> dict[str, str]:
    """libpq `options`: a query that hangs (a lock, a runaway scan) fails after `seconds` instead of for ever."""
    return {"options": f"-c statement_timeout={int(seconds * 1000)}"} if seconds > 0 else {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the predictor's writer and a reader (drift job, demo) work at the same time.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Commit on success, roll back on error; connection failures surface as DatabaseError."""
    session = Session(bind=engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except (OperationalError, SAInterfaceError) as exc:
        session.rollback()
        raise DatabaseError(f"database unavailable: {_first_line(exc)}") from exc
    except SQLAlchemyError as exc:
        session.rollback()
        raise DatabaseError(f"database operation failed: {_first_line(exc)}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
