"""Programmatic Alembic: upgrade to head, and the models-vs-migrations agreement check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL, Engine

from mlcore.db.engine import create_db_engine
from mlcore.db.models import Base

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | URL) -> Config:
    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    # ConfigParser interpolation would choke on a '%' in a password.
    cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def upgrade_to_head(engine_or_url: Engine | str | URL | None = None) -> None:
    """Bring the schema to the newest revision; idempotent."""
    engine = engine_or_url if isinstance(engine_or_url, Engine) else create_db_engine(engine_or_url)
    cfg = alembic_config(engine.url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    if not isinstance(engine_or_url, Engine):
        engine.dispose()


def schema_differences(engine: Engine) -> list[Any]:
    """What autogenerate would add to a new migration; empty when models and migrations agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
