"""One prediction log row as the predictor hands it to its writer: a database row and a spill-file line.

The fields are the prediction_logs table's (mlcore.db.models.PredictionLog) except `logged_at`, which the database
sets when the row arrives; the TypedDict below spells them out for type checkers and a test keeps it equal to the
table. The JSON form of a spill line is derived from the column types: UUID columns as text, timestamps as ISO 8601.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any, NotRequired, TypedDict, cast

from sqlalchemy import DateTime, Table, Uuid

from mlcore.db.models import PredictionLog
from mlcore.timeutil import utc_now

_TABLE = cast(Table, PredictionLog.__table__)
# Set by the database on arrival: never part of what the predictor sends.
SERVER_SET = ("logged_at",)
FIELDS: tuple[str, ...] = tuple(c.name for c in _TABLE.columns if c.name not in SERVER_SET)
_UUID_FIELDS = tuple(c.name for c in _TABLE.columns if isinstance(c.type, Uuid))
_TIME_FIELDS = tuple(c.name for c in _TABLE.columns if isinstance(c.type, DateTime) and c.name not in SERVER_SET)


class PredictionRow(TypedDict):
    id: uuid.UUID
    input_text: str
    input_hash: str
    predicted_sentiment: str | None
    confidence: float | None
    probabilities: dict[str, float] | None
    model_name: str
    model_version: str
    deployment_id: str | None
    role: str | None
    latency_ms: float
    request_id: str | None
    mirrored_request_id: NotRequired[str | None]
    status: str
    error_message: str | None
    predicted_at: datetime
    feedback_label: NotRequired[str | None]
    feedback_at: NotRequired[datetime | None]


def new_row(
    text: str,
    prediction_id: str | uuid.UUID,
    *,
    model_name: str,
    model_version: str,
    deployment_id: str | None,
    role: str | None,
    latency_ms: float,
    request_id: str | None,
) -> PredictionRow:
    """A row for one text, not yet carrying an outcome (status ok, no label): the caller fills those in."""
    return {
        "id": prediction_id if isinstance(prediction_id, uuid.UUID) else uuid.UUID(prediction_id),
        "input_text": text,
        "input_hash": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "predicted_sentiment": None,
        "confidence": None,
        "probabilities": None,
        "model_name": model_name,
        "model_version": model_version,
        "deployment_id": deployment_id,
        "role": role,
        "latency_ms": latency_ms,
        "request_id": request_id,
        "status": "ok",
        "error_message": None,
        "predicted_at": utc_now(),
    }


def insert_values(row: PredictionRow) -> dict[str, Any]:
    """The row as the values of one INSERT: every column the predictor sends, None for those it left out."""
    values = cast(dict[str, Any], row)
    return {name: values.get(name) for name in FIELDS}


def to_json_line(row: PredictionRow) -> str:
    """The row as one compact JSON line (no newline), as the spill and rejected-row files hold it."""
    out = dict(cast(dict[str, Any], row))
    for key in _UUID_FIELDS:
        if out.get(key) is not None:
            out[key] = str(out[key])
    for key in _TIME_FIELDS:
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return json.dumps(out, separators=(",", ":"))


def from_json_line(line: str) -> PredictionRow:
    """The inverse of `to_json_line`; ValueError, KeyError or TypeError for a line that is not a row."""
    row: dict[str, Any] = json.loads(line)
    if not isinstance(row, dict):
        raise TypeError(f"a spill line holds a JSON object, not {type(row).__name__}")
    for key in _UUID_FIELDS:
        if row.get(key) is not None:
            row[key] = uuid.UUID(row[key])
    for key in _TIME_FIELDS:
        if row.get(key) is not None:
            row[key] = datetime.fromisoformat(row[key])
    return cast(PredictionRow, row)
