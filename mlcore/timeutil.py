"""Time helpers every component shares: the UTC clock, naive-to-UTC, and the duration grammar.

Durations are one or more `<number><unit>` parts with units s, m, h, d, w: '90m', '7d', '1.5h', '1h30m'. The last
form is the Go-style grammar the ModelDeployment CRD accepts, so the operator can parse with this too (its spec
still uses mlpipeline_operator.durations, which accepts the h/m/s subset; see docs/architecture.md).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mlcore.errors import ConfigurationError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d*\.?\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d*\.?\d+[smhdw])+")


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything ml-pipeline stores is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_duration(raw: str, *, allow_zero: bool = False) -> timedelta:
    """'90m', '36h', '7d', '2w', '1h30m' -> timedelta; ConfigurationError for anything else, and for zero unless
    `allow_zero`."""
    value = raw.strip().lower()
    if not _WHOLE.fullmatch(value):
        raise ConfigurationError(f"invalid duration {raw!r}: expected a number with s, m, h, d or w (e.g. 7d)")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(value))
    if seconds <= 0 and not allow_zero:
        raise ConfigurationError(f"invalid duration {raw!r}: must be positive")
    return timedelta(seconds=seconds)
