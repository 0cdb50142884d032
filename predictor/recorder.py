"""What the predictor keeps of every prediction it serves: Prometheus metrics and one log row per text.

The rows are PredictionRow (mlcore.db.prediction_row), stamped with the identity the operator gave the predictor
(deployment, role, model version) and handed to the non-blocking PredictionLogWriter.
"""

from __future__ import annotations

import logging

from mlcore.db.prediction_row import PredictionRow, new_row
from predictor import metrics
from predictor.codecs import Prediction
from predictor.prediction_log import PredictionLogWriter

log = logging.getLogger(__name__)


class PredictionRecorder:
    def __init__(
        self,
        *,
        model_name: str,
        deployment_id: str | None,
        role: str,
        writer: PredictionLogWriter | None,
        model_version: str = "unknown",
    ) -> None:
        self.model_name = model_name
        self.deployment_id = deployment_id
        self.role = role
        self.writer = writer
        self.model_version = model_version  # set once the version is loaded

    def _row(self, text: str, prediction_id: str, request_id: str | None, latency_ms: float) -> PredictionRow:
        return new_row(
            text,
            prediction_id,
            model_name=self.model_name,
            model_version=self.model_version,
            deployment_id=self.deployment_id,
            role=self.role,
            latency_ms=latency_ms,
            request_id=request_id,
        )

    def batch(self, size: int, seconds: float) -> None:
        """One micro-batch through the runtime."""
        metrics.INFERENCE_LATENCY.observe(seconds)
        metrics.BATCH_SIZE.observe(size)

    def shed(self) -> None:
        """A request refused because the batcher's queue is full: counted, not logged."""
        metrics.REQUESTS_SHED.inc()

    def answered(
        self,
        protocol: str,
        texts: list[str],
        predictions: list[Prediction],
        labels: list[str],
        *,
        request_id: str | None,
        latency_ms: float,
        mirrored_request_id: str | None = None,
    ) -> None:
        metrics.REQUEST_LATENCY.labels(protocol).observe(latency_ms / 1000)
        rows = []
        for text, prediction in zip(texts, predictions, strict=True):
            metrics.PREDICTIONS.labels(self.model_version, self.role, prediction.label).inc()
            metrics.CONFIDENCE.labels(self.model_version, self.role).observe(prediction.score)
            row = self._row(text, prediction.prediction_id, request_id, latency_ms)
            row["predicted_sentiment"] = prediction.label
            row["confidence"] = prediction.score
            row["probabilities"] = dict(zip(labels, prediction.probabilities, strict=True))
            if mirrored_request_id is not None:
                row["mirrored_request_id"] = mirrored_request_id
            rows.append(row)
        if self.writer is not None:
            self.writer.log(rows)

    def failed(
        self, texts: list[str], ids: list[str], *, request_id: str | None, latency_ms: float, exc: Exception
    ) -> None:
        metrics.PREDICTION_ERRORS.labels(self.model_version, self.role).inc()
        log.error("inference failed", exc_info=exc, extra={"texts": len(texts), "request_id": request_id})
        if self.writer is None:
            return
        rows = []
        for text, prediction_id in zip(texts, ids, strict=True):
            row = self._row(text, prediction_id, request_id, latency_ms)
            row["status"] = "error"
            row["error_message"] = f"{type(exc).__name__}: {exc}"[:2000]
            rows.append(row)
        self.writer.log(rows)
