"""The kserve.Model for sentiment: decode (codecs) -> micro-batched runtime -> record (metrics, log rows) -> encode."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import kserve
from kserve.errors import InferenceError, InvalidInput, ServerNotReady

from mlcore.config import get_settings
from mlcore.errors import InferenceInputError
from predictor import codecs
from predictor.batcher import BatcherFullError, MicroBatcher
from predictor.mirror import MIRROR_HEADER, Mirror
from predictor.model_source import ModelSource, resolve_model
from predictor.prediction_log import PredictionLogWriter
from predictor.recorder import PredictionRecorder
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
        self.recorder = PredictionRecorder(
            model_name=settings.model_name,
            deployment_id=settings.deployment_id,
            role=settings.deployment_role,
            writer=writer,
            model_version=self.model_version,
        )
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
        self.recorder.model_version = self.model_version
        self.batcher = MicroBatcher(
            self._run_batch,
            max_batch_size=self.settings.max_batch_size,
            max_wait_ms=self.settings.max_wait_ms,
            max_queued=self.settings.max_queued_requests,
            pass_rows=self.settings.max_pass_rows,
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
        self.recorder.batch(len(texts), time.perf_counter() - start)
        return probabilities

    async def predict(
        self, payload: Any, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> Any:
        """decode -> infer -> record -> encode, in the protocol the request came in."""
        start = time.perf_counter()
        codec = codecs.codec_for(payload)
        decoded, request_id, mirror_of = self._decode(codec, payload, headers or {})
        ids = [str(uuid.uuid4()) for _ in decoded.texts]
        probabilities = await self._infer(decoded.texts, ids, request_id, start)
        predictions = codecs.to_predictions(probabilities, self.labels, ids)
        self.recorder.answered(
            codec.protocol,
            decoded.texts,
            predictions,
            self.labels,
            request_id=request_id,
            latency_ms=(time.perf_counter() - start) * 1000,
            # A shadow's rows name the stable prediction they copy (sent by the stable predictor or a Gateway).
            mirrored_request_id=(mirror_of or request_id) if self.settings.deployment_role == "shadow" else None,
        )
        if self.mirror is not None and request_id is not None:
            self.mirror.offer(decoded.texts, request_id)
        return codec.encode(
            payload,
            codecs.Answer(predictions, self.name, self.model_version, self.labels, decoded.return_probabilities),
        )

    def _decode(
        self, codec: codecs.Codec, payload: Any, headers: dict[str, str]
    ) -> tuple[codecs.DecodedRequest, str | None, str | None]:
        """The request's texts and options, its request id and the id of the request it mirrors; 400 if invalid."""
        try:
            decoded = codec.decode(payload, self.limits)
            request_id = codecs.validate_request_id(headers.get("x-request-id") or decoded.request_id)
            mirror_of = codecs.validate_request_id(headers.get(MIRROR_HEADER))
        except InferenceInputError as exc:
            raise InvalidInput(str(exc)) from None
        if request_id is None and self.mirror is not None:
            request_id = uuid.uuid4().hex  # the shadow's rows name the stable prediction they mirror by it
        return decoded, request_id, mirror_of

    async def _infer(self, texts: list[str], ids: list[str], request_id: str | None, start: float) -> Any:
        assert self.batcher is not None
        try:
            return await self.batcher.submit(texts)
        except BatcherFullError as exc:
            self.recorder.shed()
            raise BusyError(str(exc)) from None
        except Exception as exc:
            latency_ms = (time.perf_counter() - start) * 1000
            self.recorder.failed(texts, ids, request_id=request_id, latency_ms=latency_ms, exc=exc)
            # The details go to the log (and the log row); the client learns only what to quote when asking.
            raise InferenceError(f"inference failed (prediction ids {ids[0]}..., see the predictor log)") from exc
