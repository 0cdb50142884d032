"""POST /v1/feedback: attach the true label to a logged prediction (feedback_label, feedback_at)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import update

from mlcore.db import PredictionLog, session_scope
from mlcore.errors import DatabaseError
from predictor.prediction_log import PredictionLogWriter

FEEDBACK_PATH = "/v1/feedback"


class FeedbackNotFoundError(LookupError):
    pass


class FeedbackService:
    def __init__(self, writer: PredictionLogWriter, labels: Callable[[], list[str]], flush_timeout_s: float = 5.0):
        self.writer = writer
        self._labels = labels
        self.flush_timeout_s = flush_timeout_s

    def parse(self, body: Any) -> tuple[uuid.UUID, str]:
        """(prediction_id, label) from the request body; ValueError with a clear message otherwise."""
        if not isinstance(body, dict) or set(body) != {"prediction_id", "label"}:
            raise ValueError('send {"prediction_id": "<id from a prediction>", "label": "<one of the labels>"}')
        try:
            prediction_id = uuid.UUID(str(body["prediction_id"]))
        except ValueError:
            raise ValueError(f"prediction_id {body['prediction_id']!r} is not a prediction id (a UUID)") from None
        label = body["label"]
        labels = self._labels()
        if not isinstance(label, str) or label not in labels:
            raise ValueError(f"label {label!r} is not one of the model's labels {labels}")
        return prediction_id, label

    def apply(self, prediction_id: uuid.UUID, label: str) -> datetime:
        """Set the feedback; a row still queued for writing is flushed first. FeedbackNotFoundError if none exists."""
        now = datetime.now(UTC)
        deadline = time.monotonic() + self.flush_timeout_s
        while True:
            pending = self.writer.has_pending()
            if self._update(prediction_id, label, now):
                return now
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                raise FeedbackNotFoundError(f"no prediction with id {prediction_id}")
            # The prediction may still be queued for writing: wait for the queue to drain (or a moment), retry.
            self.writer.flush(min(0.2, remaining))

    def _update(self, prediction_id: uuid.UUID, label: str, now: datetime) -> bool:
        statement = (
            update(PredictionLog)
            .where(PredictionLog.id == prediction_id)
            .values(feedback_label=label, feedback_at=now)
            .execution_options(synchronize_session=False)
        )
        with session_scope(self.writer.engine) as session:
            result = session.execute(statement)
            return bool(result.rowcount)  # type: ignore[attr-defined]


def install_feedback_route(app: FastAPI, service: FeedbackService) -> None:
    async def feedback(request: Request) -> JSONResponse:
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
        except DatabaseError as exc:
            return JSONResponse({"error": f"feedback not stored, try again later: {exc}"}, status_code=503)
        return JSONResponse({"prediction_id": str(prediction_id), "label": label, "feedback_at": at.isoformat()})

    app.add_api_route(FEEDBACK_PATH, feedback, methods=["POST"], include_in_schema=True, tags=["feedback"])
