"""POST /v1/feedback: attach the true label to a logged prediction (feedback_label, feedback_at).

Feedback feeds the drift job's quality check, so it is guarded: a bearer token (read from a Secret-mounted file)
is required everywhere but on the embedded default (SQLite, a laptop); a predictor labels only its own
deployment's predictions; and a label is written once: a repeat with the same label is acknowledged, a different
label is refused (409), so feedback_at never moves and the drift job counts each prediction once.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, update

from mlcore.db import PredictionLog, session_scope
from mlcore.errors import DatabaseError
from predictor.prediction_log import PredictionLogWriter

FEEDBACK_PATH = "/v1/feedback"


class FeedbackNotFoundError(LookupError):
    pass


class FeedbackConflictError(ValueError):
    pass


@dataclass(frozen=True)
class FeedbackAccess:
    """Who may send feedback: holders of `token`; with no token, anyone only when `open_without_token`."""

    token: str | None
    open_without_token: bool

    def refusal(self, authorization: str | None) -> tuple[int, str] | None:
        """None when the request may proceed, else (status, message)."""
        if self.token is None:
            if self.open_without_token:
                return None
            return 403, "feedback is disabled: no token is configured (PREDICTOR_FEEDBACK_TOKEN_FILE)"
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), self.token.encode()):
            return 401, "feedback needs the header Authorization: Bearer <feedback token>"
        return None


class FeedbackService:
    def __init__(
        self,
        writer: PredictionLogWriter,
        labels: Callable[[], list[str]],
        flush_timeout_s: float = 5.0,
        *,
        deployment_id: str | None = None,
    ):
        self.writer = writer
        self._labels = labels
        self.flush_timeout_s = flush_timeout_s
        self.deployment_id = deployment_id

    def parse(self, body: Any) -> tuple[uuid.UUID, str]:
        """(prediction_id, label) from the request body; ValueError with a clear message otherwise."""
        if not isinstance(body, dict) or set(body) != {"prediction_id", "label"}:
            raise ValueError('send {"prediction_id": "<id from a prediction>", "label": "<one of the labels>"}')
        try:
            prediction_id = uuid.UUID(str(body["prediction_id"]))
        except ValueError:
            raise ValueError(
                f"prediction_id {str(body['prediction_id'])[:64]!r} is not a prediction id (a UUID)"
            ) from None
        label = body["label"]
        labels = self._labels()
        if not isinstance(label, str) or label not in labels:
            raise ValueError(f"label {str(label)[:64]!r} is not one of the model's labels {labels}")
        return prediction_id, label

    def apply(self, prediction_id: uuid.UUID, label: str) -> datetime:
        """Set the feedback once; a row still queued for writing is flushed first.

        FeedbackNotFoundError if this deployment logged no such prediction, FeedbackConflictError if it already
        carries a different label; the same label again returns the time it was first given."""
        now = datetime.now(UTC)
        deadline = time.monotonic() + self.flush_timeout_s
        while True:
            pending = self.writer.has_pending()
            if self._update(prediction_id, label, now):
                return now
            existing = self._existing(prediction_id)
            if existing is not None:
                given, at = existing
                if given == label and at is not None:
                    return at
                raise FeedbackConflictError(f"prediction {prediction_id} already has the feedback label {given!r}")
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                raise FeedbackNotFoundError(f"no prediction with id {prediction_id}")
            # The prediction may still be queued for writing: wait for the queue to drain (or a moment), retry.
            self.writer.flush(min(0.2, remaining))

    def _mine(self) -> Any:
        return PredictionLog.deployment_id.is_not_distinct_from(self.deployment_id)

    def _update(self, prediction_id: uuid.UUID, label: str, now: datetime) -> bool:
        statement = (
            update(PredictionLog)
            .where(PredictionLog.id == prediction_id, self._mine(), PredictionLog.feedback_label.is_(None))
            .values(feedback_label=label, feedback_at=now)
            .execution_options(synchronize_session=False)
        )
        with session_scope(self.writer.engine) as session:
            result = session.execute(statement)
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _existing(self, prediction_id: uuid.UUID) -> tuple[str | None, datetime | None] | None:
        query = select(PredictionLog.feedback_label, PredictionLog.feedback_at).where(
            PredictionLog.id == prediction_id, self._mine()
        )
        with session_scope(self.writer.engine) as session:
            row = session.execute(query).first()
        return None if row is None else (row[0], row[1])


def install_feedback_route(app: FastAPI, service: FeedbackService, access: FeedbackAccess) -> None:
    async def feedback(request: Request) -> JSONResponse:
        refused = access.refusal(request.headers.get("authorization"))
        if refused is not None:
            status, message = refused
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"malformed JSON: {exc}"}, status_code=400)
        try:
            prediction_id, label = service.parse(body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            at = await asyncio.to_thread(service.apply, prediction_id, label)
        except FeedbackNotFoundError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except FeedbackConflictError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except DatabaseError:
            return JSONResponse({"error": "feedback not stored, try again later"}, status_code=503)
        return JSONResponse({"prediction_id": str(prediction_id), "label": label, "feedback_at": at.isoformat()})

    app.add_api_route(FEEDBACK_PATH, feedback, methods=["POST"], include_in_schema=True, tags=["feedback"])
