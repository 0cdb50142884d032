"""The v2 REST infer call for JSON bodies, answered one layer above FastAPI's router.

Same work as kserve's route (kserve.protocol.rest.v2_endpoints.infer): the same pydantic request model, the same
DataPlane decode -> infer -> encode, the same response model, and errors answered by the app's own exception
handlers (so 400 / 500 / 503 bodies are the ones the route gives). What it skips is the framework around that
route: route matching, dependency solving, the request_response wrapper and jsonable_encoder's walk over the
response. py-spy at c=1 on the int8 predictor: the event loop was busy 1.7 ms a request with kserve's route and 1.34
ms with this, beside a batch-1 forward of 18-22 ms (the c=1 goal is 1.1x the bare runtime).

Anything else (other paths and methods, other models, the binary tensor extension, a body not declared JSON) goes
to the app unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest, InferenceResponse
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from predictor.body_limit import BodyTooLargeError

BINARY_HEADER = b"inference-header-content-length"

ASGIApp = Any


class FastV2Infer:
    def __init__(self, app: ASGIApp, *, model_name: str, dataplane: Any) -> None:
        self.app = app
        self.model_name = model_name
        self.path = f"/v2/models/{model_name}/infer"
        self.dataplane = dataplane

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self._handles(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self._infer(request)
        except BodyTooLargeError:
            raise  # BodySizeLimit, around this, answers 413
        except Exception as exc:
            response = await self._error(request, exc)
        await response(scope, receive, send)

    def _handles(self, scope: dict[str, Any]) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return False
        json_body = False
        for name, value in scope["headers"]:
            if name == BINARY_HEADER:
                return False
            if name == b"content-type":
                # FastAPI's rule for a JSON body; without one, the route reads raw bytes (the binary extension).
                media = value.split(b";")[0].strip().lower()
                json_body = media == b"application/json" or (
                    media.startswith(b"application/") and media.endswith(b"+json")
                )
        return json_body

    async def _infer(self, request: Request) -> Response:
        if not await self.dataplane.model_ready(self.model_name, True):
            raise ModelNotReady(self.model_name)
        payload = InferenceRequest.model_validate(_parse_json(await request.body()))
        headers = dict(request.headers)
        infer_request: InferRequest = self.dataplane.decode_inference_request(payload, headers, self.model_name)
        answer, response_headers = await self.dataplane.infer(
            model_name=self.model_name, request=infer_request, headers=headers
        )
        answer, encode_headers = self.dataplane.encode(
            model_name=self.model_name, response=answer, headers=headers, req_attributes={}
        )
        response_headers.update(encode_headers)
        for name in ("content-length", "content-type"):
            response_headers.pop(name, None)
        if isinstance(answer, bytes):
            return Response(answer, headers=response_headers)
        document = InferenceResponse.model_validate(answer).model_dump(mode="json")
        return Response(orjson.dumps(document), media_type="application/json", headers=response_headers)

    async def _error(self, request: Request, exc: Exception) -> Response:
        """The app's own handler for this exception (the route's answer); a pydantic error is answered as FastAPI
        answers an invalid body."""
        if isinstance(exc, ValidationError):
            exc = RequestValidationError(exc.errors(include_url=False))
        handlers: dict[Any, Any] = request.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                response: Response = await handlers[cls](request, exc)
                return response
        raise exc


def _parse_json(body: bytes) -> Any:
    """The body as FastAPI reads it: json.loads, which keeps a lone surrogate escape for the codec to refuse by name
    (pydantic's and orjson's parsers reject the whole document instead), and FastAPI's errors for what fails."""
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        error = {"type": "json_invalid", "loc": ("body", getattr(exc, "pos", 0)), "msg": "JSON decode error"}
        raise RequestValidationError([{**error, "input": {}, "ctx": {"error": str(exc)}}]) from None
