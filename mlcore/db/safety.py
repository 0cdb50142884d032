"""Validation for the rare SQL that must name a table dynamically (maintenance, purges, counts).

Values always go through bound parameters; identifiers cannot, so they pass a regex and a whitelist first.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select, table
from sqlalchemy.orm import Session

from mlcore.db.models import Base
from mlcore.errors import SecurityError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def allowed_tables() -> frozenset[str]:
    return frozenset(Base.metadata.tables)


def validate_table_name(name: str) -> str:
    """Return `name` if it is a plain identifier naming one of our tables; raise SecurityError otherwise."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise SecurityError(f"refused table name {name!r}: not a plain lower-case SQL identifier")
    if name not in allowed_tables():
        raise SecurityError(f"refused table name {name!r}: not one of {sorted(allowed_tables())}")
    return name


def count_rows(session: Session, table_name: str) -> int:
    """Row count of one of our tables, named at run time (CLI summaries, health checks)."""
    target = table(validate_table_name(table_name))
    return int(session.execute(select(func.count()).select_from(target)).scalar_one())
