"""The fast v2 infer path answers exactly as kserve's own route does, and hands everything else to it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import kserve
import pytest
from fastapi import FastAPI
from fastapi.responses import ORJSONResponse
from kserve.errors import InferenceError, InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer

from predictor.fast_infer import FastV2Infer
from predictor.server import _install_error_handlers, import_model_server

pytestmark = pytest.mark.unit

PATH = "/v2/models/echo/infer"


class Echo(kserve.Model):  # type: ignore[misc]
    """Answers each text's length; refuses what SentimentModel refuses the same way (InvalidInput, InferenceError)."""

    def __init__(self) -> None:
        super().__init__("echo")
        self.ready = True

    async def predict(self, payload: InferRequest, headers: Any = None, response_headers: Any = None) -> Any:
        texts = payload.inputs[0].data
        for text in texts:
            if not isinstance(text, str) or not text:
                raise InvalidInput("each text must be a non-empty string")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput("a lone surrogate") from None
            if text == "boom":
                raise InferenceError("the model failed")
        lengths = InferOutput(name="length", shape=[len(texts)], datatype="INT64", data=[len(t) for t in texts])
        return InferResponse(model_name=self.name, infer_outputs=[lengths], response_id=payload.id or "no-id")


class RouteCalls:
    """Counts the requests that get past the fast path to the app's router (one count for all instances: Starlette
    builds the middleware itself)."""

    count = 0

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            type(self).count += 1
        await self.app(scope, receive, send)


def make_app(model: Echo, *, fast: bool) -> FastAPI:
    import_model_server()
    registry = ModelRepository()
    registry.update(model)
    dataplane = DataPlane(model_registry=registry)
    rest = RESTServer("kserve.model_server:app", dataplane, ModelRepositoryExtension(registry), http_port=0)
    app = FastAPI(default_response_class=ORJSONResponse)  # as kserve.model_server's app
    rest._register_endpoints(app)
    rest._add_exception_handlers(app)
    _install_error_handlers(app)
    app.add_middleware(RouteCalls)
    if fast:
        app.add_middleware(FastV2Infer, model_name=model.name, dataplane=dataplane)
    return app


def v2(*texts: str, **extra: Any) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": list(texts)}], **extra}
    ).encode()


async def both(
    model: Echo, body: bytes, headers: dict[str, str], path: str = PATH
) -> tuple[httpx.Response, httpx.Response, int]:
    answers = []
    for fast in (False, True):
        app = make_app(model, fast=fast)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            RouteCalls.count = 0
            answers.append(await client.post(path, content=body, headers=headers))
    return answers[0], answers[1], RouteCalls.count  # the count of the last, fast, app


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (v2("good", "films", id="r1", parameters={"p": 1}), JSON),
        (v2("charset"), {"content-type": "application/json; charset=utf-8"}),
        (b"{not json", JSON),
        (b"", JSON),
        (b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["bad \\ud800"]}]}', JSON),
        (v2(""), JSON),
        (v2("boom"), JSON),
    ],
    ids=["ok", "charset", "malformed", "empty", "lone-surrogate", "refused", "model-error"],
)
async def test_answers_as_kserve_route_does_without_reaching_the_router(body: bytes, headers: dict[str, str]) -> None:
    route, fast, routed = await both(Echo(), body, headers)
    assert (fast.status_code, fast.headers["content-type"], fast.json()) == (
        route.status_code,
        route.headers["content-type"],
        route.json(),
    )
    assert routed == 0


async def test_a_model_that_is_not_ready_is_503_as_on_the_route() -> None:
    model = Echo()
    model.ready = False
    route, fast, _ = await both(model, v2("x"), JSON)
    assert fast.status_code == route.status_code == 503
    assert fast.json() == route.json()


async def test_an_invalid_document_is_400_naming_the_field() -> None:
    # The route's message also lists why the body is not raw bytes either (its Union[InferenceRequest, bytes]).
    route, fast, routed = await both(Echo(), json.dumps({"inputs": "x"}).encode(), JSON)
    assert fast.status_code == route.status_code == 400
    assert fast.json() == {"error": "invalid request: inputs: Input should be a valid list"}
    assert routed == 0


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v2/models/other/infer", JSON),
        (PATH, {"content-type": "text/plain"}),
        (PATH, {}),
        (PATH, {**JSON, "inference-header-content-length": "10"}),
    ],
    ids=["other-model", "not-json", "no-content-type", "binary-extension"],
)
async def test_hands_other_requests_to_the_route(path: str, headers: dict[str, str]) -> None:
    route, fast, routed = await both(Echo(), v2("x"), headers, path=path)
    assert (fast.status_code, fast.text) == (route.status_code, route.text)
    assert routed == 1
