"""Wire the model, the prediction log writer and the feedback route into kserve's ModelServer (REST v1/v2, gRPC)."""

from __future__ import annotations

import logging
import sys
from types import ModuleType
from typing import Any, cast

from mlcore.config import get_settings
from mlcore.db import create_db_engine
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)


def import_model_server() -> ModuleType:
    """kserve.model_server parses sys.argv when first imported: import it with an argv it cannot misread."""
    if "kserve.model_server" in sys.modules:
        return sys.modules["kserve.model_server"]
    saved = sys.argv
    sys.argv = [saved[0] if saved else "predictor"]
    try:
        import kserve.model_server as module
    finally:
        sys.argv = saved
    return cast(ModuleType, module)


def _install_error_handlers(app: Any) -> None:
    """FastAPI answers unparsable bodies with 422; the protocol wants 400 with {"error": ...}."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    async def invalid_body(_request: Any, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            if error.get("type") == "json_invalid":
                return JSONResponse({"error": f"malformed JSON: {error.get('msg')}"}, status_code=400)
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {error.get('msg')}")
        return JSONResponse({"error": "invalid request: " + "; ".join(problems)}, status_code=400)

    app.add_exception_handler(RequestValidationError, invalid_body)


def _versioned_dataplane(registry: Any, versions: dict[str, str], platforms: dict[str, str]) -> Any:
    from kserve.protocol.dataplane import DataPlane

    class VersionedDataPlane(DataPlane):  # type: ignore[misc]
        """Model metadata with the served version and platform (which runtime serves it), as the protocol allows."""

        async def model_metadata(self, model_name: str) -> dict[str, Any]:
            metadata: dict[str, Any] = await super().model_metadata(model_name)
            metadata["platform"] = platforms.get(model_name, "unknown")
            if model_name in versions:
                metadata["versions"] = [versions[model_name]]
            return metadata

    return VersionedDataPlane(model_registry=registry)


def _grpc_metadata_with_versions() -> None:
    """kserve 0.21's gRPC ModelMetadata drops `versions`; serve it like REST does. The servicer class is looked up
    by name when the gRPC server starts, so a subclass put in its place is what this process serves."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import server as grpc_server
    from kserve.protocol.grpc.servicer import InferenceServicer

    if getattr(grpc_server.InferenceServicer, "_mlp_versions", False):
        return

    class VersionedServicer(InferenceServicer):  # type: ignore[misc]
        _mlp_versions = True

        async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
            metadata = await self._data_plane.model_metadata(model_name=request.name)
            return pb.ModelMetadataResponse(
                name=metadata["name"],
                versions=metadata.get("versions") or [],
                platform=metadata["platform"],
                inputs=metadata["inputs"],
                outputs=metadata["outputs"],
            )

    grpc_server.InferenceServicer = VersionedServicer


def _quiet_request_logs(enabled: bool) -> None:
    level = logging.INFO if enabled else logging.WARNING
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(level)


def build_writer(settings: PredictorSettings) -> Any:
    if not settings.log_predictions:
        return None
    from predictor.prediction_log import PredictionLogWriter

    core = get_settings()
    return PredictionLogWriter(
        create_db_engine(),
        spill_dir=settings.effective_spill_dir(core.home),
        queue_size=settings.log_queue_size,
        batch_rows=settings.log_batch_rows,
        flush_interval_s=settings.log_flush_interval_s,
        retry_max_wait_s=settings.log_retry_max_wait_s,
        migrate=settings.migrate_db or not core.uses_postgres,
    )


def serve(settings: PredictorSettings) -> None:
    """Load (fails fast with ModelError), then serve until a signal; the log writer is flushed on the way out."""
    model_server = import_model_server()
    from predictor.feedback import FeedbackService, install_feedback_route
    from predictor.model import SentimentModel

    writer = build_writer(settings)
    model = SentimentModel(settings, writer=writer)
    try:
        model.load()
        server = model_server.ModelServer(
            http_port=settings.http_port,
            grpc_port=settings.grpc_port,
            enable_grpc=settings.enable_grpc,
            workers=1,  # one process: the micro-batcher and the log queue live in it
            enable_latency_logging=settings.access_log,
        )
        _quiet_request_logs(settings.access_log)
        server.dataplane = _versioned_dataplane(
            server.registered_models, {model.name: model.model_version}, {model.name: model.platform}
        )
        _grpc_metadata_with_versions()
        app = model_server.app
        _install_error_handlers(app)
        if writer is not None:
            install_feedback_route(app, FeedbackService(writer, lambda: model.labels))
        server.start([model])
    finally:
        if writer is not None:
            writer.close()
