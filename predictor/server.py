"""Wire the model, the prediction log writer and the feedback route into kserve's ModelServer (REST v1/v2, gRPC)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, cast

from mlcore.config import get_settings
from mlcore.db import create_db_engine
from predictor.body_limit import BodySizeLimit
from predictor.fast_infer import FastV2Infer
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


def _versioned_dataplane(
    registry: Any, versions: dict[str, str], platforms: dict[str, str], model_loaded: Callable[[], bool]
) -> Any:
    from kserve.protocol.dataplane import DataPlane

    class VersionedDataPlane(DataPlane):  # type: ignore[misc]
        """Model metadata with the served version and platform (which runtime serves it), as the protocol allows;
        health that follows the model: live and ready only while it is loaded (kserve's own answer 'alive' with no
        model at all)."""

        async def model_metadata(self, model_name: str) -> dict[str, Any]:
            metadata: dict[str, Any] = await super().model_metadata(model_name)
            metadata["platform"] = platforms.get(model_name, "unknown")
            if model_name in versions:
                metadata["versions"] = [versions[model_name]]
            return metadata

        async def live(self) -> dict[str, str]:
            return {"status": "alive" if model_loaded() else "model not loaded"}

        async def ready(self) -> bool:
            return model_loaded() and bool(await super().ready())

    return VersionedDataPlane(model_registry=registry)


# KServe's model repository extension: an unauthenticated POST .../unload takes the model away for good (`load`
# cannot bring this model back) while the pod stays up. Nothing here needs it, so its routes and RPCs are not served.
REPOSITORY_ROUTE_PREFIX = "/v2/repository/"
# kserve's /v2/models/{name}/versions/{version}[...] routes only ever answer 501; one version is served per pod.
VERSION_ROUTE_PART = "/versions/{model_version}"
# kserve's per-request timing lines (kserve.logging.KSERVE_TRACE_LOGGER_NAME).
TRACE_LOGGER = "kserve.trace"


def _served_route(path: str) -> bool:
    return not path.startswith(REPOSITORY_ROUTE_PREFIX) and VERSION_ROUTE_PART not in path


def _without_repository_routes() -> None:
    """kserve registers its routes when the REST server starts: put a subclass in its place that drops these."""
    from kserve import model_server
    from kserve.protocol.rest.server import RESTServer

    if getattr(model_server.RESTServer, "_mlp_no_repository", False):
        return

    class RESTServerWithoutRepository(RESTServer):  # type: ignore[misc]
        _mlp_no_repository = True

        def _register_endpoints(self, app: Any) -> None:
            # kserve adds them to an APIRouter, then includes it: filter each router on its way in.
            include_router = app.include_router

            def include_without_repository(router: Any, *args: Any, **kwargs: Any) -> Any:
                router.routes[:] = [r for r in router.routes if _served_route(str(getattr(r, "path", "")))]
                return include_router(router, *args, **kwargs)

            app.include_router = include_without_repository
            try:
                super()._register_endpoints(app)
            finally:
                del app.include_router

        def _add_middlewares(self, app: Any) -> None:
            # kserve's TimingMiddleware writes only to the kserve.trace logger, at INFO; with that logger quiet
            # (PREDICTOR_ACCESS_LOG off, see _quiet_request_logs) it would still scan the routes and read the
            # process's CPU time twice on every request, for lines nobody sees.
            if logging.getLogger(TRACE_LOGGER).isEnabledFor(logging.INFO):
                super()._add_middlewares(app)

        def _add_exception_handlers(self, app: Any) -> None:
            super()._add_exception_handlers(app)
            from fastapi.responses import JSONResponse

            # kserve answers 501 for what it does not do (e.g. a `model_version` parameter): the client asked for
            # something this predictor does not offer, which is a 400 with the reason, not a server fault.
            async def not_offered(_request: Any, exc: NotImplementedError) -> JSONResponse:
                return JSONResponse({"error": f"not supported by this predictor: {exc}"}, status_code=400)

            app.add_exception_handler(NotImplementedError, not_offered)

    model_server.RESTServer = RESTServerWithoutRepository


def _grpc_metadata_with_versions() -> None:
    """kserve 0.21's gRPC ModelMetadata drops `versions`; serve it like REST does. The servicer class is looked up
    by name when the gRPC server starts, so a subclass put in its place is what this process serves. The same
    subclass refuses the model repository RPCs (see REPOSITORY_ROUTE_PREFIX)."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import server as grpc_server
    from kserve.protocol.grpc.servicer import InferenceServicer

    if getattr(grpc_server.InferenceServicer, "_mlp_versions", False):
        return

    class VersionedServicer(InferenceServicer):  # type: ignore[misc]
        _mlp_versions = True

        async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the model repository API is not served")

        async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:  # noqa: N802
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the model repository API is not served")

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
    for name in ("uvicorn.access", TRACE_LOGGER):
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
        spill_max_bytes=settings.spill_max_bytes,
        migrate=settings.migrate_db or not core.uses_postgres,
    )


def model_is_loaded(server: Any, model: Any) -> bool:
    """The model is registered, says it is ready, and its runtime holds weights."""
    runtime = getattr(model, "runtime", None)
    registered = server.registered_models.get_model(model.name) is model
    return bool(registered and model.ready and runtime is not None and runtime.loaded)


def serve(settings: PredictorSettings) -> None:
    """Load (fails fast with ModelError), then serve until a signal; the log writer is flushed on the way out."""
    model_server = import_model_server()
    from predictor.feedback import FeedbackAccess, FeedbackService, install_feedback_route
    from predictor.model import SentimentModel

    core = get_settings()
    settings.check_database(core.uses_postgres)
    feedback_token = settings.effective_feedback_token()
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
            server.registered_models,
            {model.name: model.model_version},
            {model.name: model.platform},
            lambda: model_is_loaded(server, model),
        )
        _grpc_metadata_with_versions()
        _without_repository_routes()
        app = model_server.app
        _install_error_handlers(app)
        # Added first, so it runs inside the body cap.
        app.add_middleware(FastV2Infer, model_name=model.name, dataplane=server.dataplane)
        app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
        if writer is not None:
            service = FeedbackService(writer, lambda: model.labels, deployment_id=settings.deployment_id)
            access = FeedbackAccess(feedback_token, open_without_token=not core.uses_postgres)
            install_feedback_route(app, service, access)
        server.start([model])
    finally:
        if writer is not None:
            writer.close()
