"""The kserve.Model for sentiment: decode (codecs) -> micro-batched runtime -> encode, plus a log row per text."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kserve
from kserve.errors import InferenceError, InvalidInput, ServerNotReady
from kserve.protocol.infer_type import InferRequest

from mlcore.config import get_settings
from mlcore.errors import InferenceInputError
from predictor import codecs, metrics
from predictor.batcher import BatcherFullError, MicroBatcher
from predictor.mirror import MIRROR_HEADER, Mirror
from predictor.model_source import ModelSource, resolve_model
from predictor.prediction_log import PredictionLogWriter
from predictor.runtime import SentimentRuntime
from predictor.runtime_choice import load_runtime
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)


class BusyError(ServerNotReady):  # type: ignore[misc]
    """The batcher's queue is full: 503 over REST, UNAVAILABLE over gRPC (whose handler reads `.reason`)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.error_msg = self.reason = f"predictor busy: {detail}"


class SentimentModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, settings: PredictorSettings, *, writer: PredictionLogWriter | None = None) -> None:
        super().__init__(settings.model_name)
        self.settings = settings
        self.writer = writer
        self.source: ModelSource | None = None
        self.runtime: SentimentRuntime | None = None
        self.batcher: MicroBatcher | None = None
        self.model_version = settings.model_version or "unknown"
        self.limits = codecs.TextLimits(max_chars=settings.max_text_chars, max_items=settings.max_request_items)
        self.mirror: Mirror | None = None
        if settings.mirror_url and settings.mirror_percent > 0:
            self.mirror = Mirror(
                settings.mirror_url,
                settings.mirror_percent,
                queue_size=settings.mirror_queue_size,
                timeout_s=settings.mirror_timeout_s,
            )

    # --- lifecycle ----------------------------------------------------------------------------------------

    def load(self) -> bool:
        """Verify the version against its manifest, then load it; any problem raises ModelError."""
        core = get_settings()
        download_root = self.settings.download_dir or core.mlp_cache_dir / "models"
        self.source = resolve_model(self.settings.storage_uri, self.settings.model_dir, Path(download_root))
        self.runtime = load_runtime(
            self.settings.runtime,
            self.source,
            max_length=self.settings.max_length,
            threads=self.settings.effective_torch_threads(),
            optimize=self.settings.optimize,
        )
        # The operator's MODEL_VERSION wins: it is what the canary analysis groups by.
        self.model_version = self.settings.model_version or self.source.version or "unknown"
        self.batcher = MicroBatcher(
            self._run_batch,
            max_batch_size=self.settings.max_batch_size,
            max_wait_ms=self.settings.max_wait_ms,
            max_queued=self.settings.max_queued_requests,
        )
        if self.writer is not None:
            self.writer.start()
        if self.mirror is not None:
            self.mirror.start()
        self.ready = True
        log.info(
            "predictor ready",
            extra={
                "model": self.name,
                "version": self.model_version,
                "source": self.source.uri,
                "runtime": self.runtime.name,
            },
        )
        return self.ready

    def stop(self) -> None:
        # The writer is closed by the server after the loop ends (closing may wait on the database).
        self.ready = False
        if self.mirror is not None:
            self.mirror.close()

    @property
    def labels(self) -> list[str]:
        return self.runtime.labels if self.runtime else []

    @property
    def runtime_name(self) -> str | None:
        return self.runtime.name if self.runtime else None

    @property
    def platform(self) -> str:
        return self.runtime.platform if self.runtime else "unknown"

    # --- protocol metadata --------------------------------------------------------------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        return codecs.v2_input_metadata()

    def get_output_types(self) -> list[dict[str, Any]]:
        return codecs.v2_output_metadata(len(self.labels))

    # --- inference ----------------------------------------------------------------------------------------

    def _run_batch(self, texts: list[str]) -> Any:
        assert self.runtime is not None
        start = time.perf_counter()
        probabilities = self.runtime.predict_proba(texts)
        metrics.INFERENCE_LATENCY.observe(time.perf_counter() - start)
        metrics.BATCH_SIZE.observe(len(texts))
        return probabilities

    async def predict(
        self, payload: Any, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> Any:
        start = time.perf_counter()
        is_v2 = isinstance(payload, InferRequest)
        try:
            decoded = codecs.decode_v2(payload, self.limits) if is_v2 else codecs.decode_v1(payload, self.limits)
            request_id = codecs.validate_request_id((headers or {}).get("x-request-id") or decoded.request_id)
            mirror_of = codecs.validate_request_id((headers or {}).get(MIRROR_HEADER))
        except InferenceInputError as exc:
            raise InvalidInput(str(exc)) from None
        if request_id is None and self.mirror is not None:
            request_id = uuid.uuid4().hex  # the shadow's rows name the stable prediction they mirror by it
        ids = [str(uuid.uuid4()) for _ in decoded.texts]
        assert self.batcher is not None
        try:
            probabilities = await self.batcher.submit(decoded.texts)
        except BatcherFullError as exc:
            metrics.REQUESTS_SHED.inc()
            raise BusyError(str(exc)) from None
        except Exception as exc:
            latency_ms = (time.perf_counter() - start) * 1000
            self._log_failure(decoded.texts, ids, request_id, latency_ms, exc)
            # The details go to the log (and the log row); the client learns only what to quote when asking.
            raise InferenceError(f"inference failed (prediction ids {ids[0]}..., see the predictor log)") from exc
        latency_ms = (time.perf_counter() - start) * 1000
        predictions = codecs.to_predictions(probabilities, self.labels, ids)
        metrics.REQUEST_LATENCY.labels("v2" if is_v2 else "v1").observe(latency_ms / 1000)
        mirrored = None
        if self.settings.deployment_role == "shadow":  # a copy from the stable predictor, or from a Gateway mirror
            mirrored = mirror_of or request_id
        self._record(decoded.texts, predictions, request_id, latency_ms, mirrored)
        if self.mirror is not None and request_id is not None:
            self.mirror.offer(decoded.texts, request_id)
        if is_v2:
            return codecs.encode_v2(
                payload,
                predictions,
                model_name=self.name,
                model_version=self.model_version,
                response_id=payload.id or str(uuid.uuid4()),
                labels=self.labels,
                return_probabilities=decoded.return_probabilities,
            )
        return codecs.encode_v1(predictions, labels=self.labels, return_probabilities=decoded.return_probabilities)

    # --- logging ------------------------------------------------------------------------------------------

    def _base_row(self, text: str, prediction_id: str, request_id: str | None, latency_ms: float) -> dict[str, Any]:
        return {
            "id": uuid.UUID(prediction_id),
            "input_text": text,
            "input_hash": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "predicted_sentiment": None,
            "confidence": None,
            "probabilities": None,
            "model_name": self.name,
            "model_version": self.model_version,
            "deployment_id": self.settings.deployment_id,
            "role": self.settings.deployment_role,
            "latency_ms": latency_ms,
            "request_id": request_id,
            "status": "ok",
            "error_message": None,
            "predicted_at": datetime.now(UTC),
        }

    def _record(
        self,
        texts: list[str],
        predictions: list[codecs.Prediction],
        request_id: str | None,
        latency_ms: float,
        mirrored_request_id: str | None = None,
    ) -> None:
        role = self.settings.deployment_role
        rows = []
        for text, prediction in zip(texts, predictions, strict=True):
            metrics.PREDICTIONS.labels(self.model_version, role, prediction.label).inc()
            metrics.CONFIDENCE.labels(self.model_version, role).observe(prediction.score)
            row = self._base_row(text, prediction.prediction_id, request_id, latency_ms)
            row.update(
                predicted_sentiment=prediction.label,
                confidence=prediction.score,
                probabilities=dict(zip(self.labels, prediction.probabilities, strict=True)),
            )
            if mirrored_request_id is not None:
                row["mirrored_request_id"] = mirrored_request_id
            rows.append(row)
        if self.writer is not None:
            self.writer.log(rows)

    def _log_failure(
        self, texts: list[str], ids: list[str], request_id: str | None, latency_ms: float, exc: Exception
    ) -> None:
        metrics.PREDICTION_ERRORS.labels(self.model_version, self.settings.deployment_role).inc()
        log.error("inference failed", exc_info=exc, extra={"texts": len(texts), "request_id": request_id})
        if self.writer is None:
            return
        rows = []
        for text, prediction_id in zip(texts, ids, strict=True):
            row = self._base_row(text, prediction_id, request_id, latency_ms)
            row.update(status="error", error_message=f"{type(exc).__name__}: {exc}"[:2000])
            rows.append(row)
        self.writer.log(rows)
