"""Go-style durations as the CRD accepts them (1h30m, 5m, 30s)."""

from __future__ import annotations

import re
from datetime import timedelta

from mlcore.errors import DataValidationError

_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """'1h30m' -> timedelta; the same grammar as the CRD's CEL rule."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise DataValidationError(f"not a duration such as 30s, 5m or 1h30m: {text!r}")
    parts = {key: int(value) for key, value in match.groupdict().items() if value}
    return timedelta(hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0))
