"""A real predictor against requests written to break it: nothing a client sends may stall logging, take the model
away, or cost other clients their answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
import sqlalchemy as sa
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.fixtures.models import publish_tiny_model
from tests.fixtures.predictor_server import (
    DEPLOYMENT_ID,
    FEEDBACK_AUTH,
    Served,
    fresh_database,
    start_predictor,
    wait_for,
)
from tests.fixtures.services import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INFER = "/v2/models/sentiment/infer"
PREDICT = "/v1/models/sentiment:predict"


@pytest.fixture(scope="module")
def served(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One predictor serving a mounted model directory (like KServe's /mnt/models), logging to Postgres."""
    tmp = tmp_path_factory.mktemp("hardening")
    model_uri = publish_tiny_model((tmp / "store").as_uri(), "sentiment", "7")
    db_url = fresh_database(postgres_server)
    process = start_predictor(tmp / "p", ["--model_dir", model_uri.removeprefix("file://")], db_url)
    engine = sa.create_engine(db_url)
    try:
        yield Served(process=process, db_url=db_url, engine=engine, model_uri=model_uri)
    finally:
        process.stop()
        engine.dispose()


def v2_body(texts: list[object], **extra: object) -> dict[str, object]:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}], **extra}


def logged(served: Served, request_id: str) -> list[dict[str, object]]:
    return served.rows("request_id = :r", r=request_id)


# --- logging cannot be stalled by one request -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"x-request-id": "r" * 129}, v2_body(["fine text"]), "request id has 129 characters"),
        ({}, v2_body(["fine text"], id="i" * 300), "request id has 300 characters"),
        ({}, v2_body(["a NUL \x00 here"]), "NUL"),
    ],
)
def test_input_the_log_table_cannot_hold_is_400_and_logging_goes_on(
    served: Served, headers: dict[str, str], body: dict[str, object], message: str
) -> None:
    with served.client() as http:
        refused = http.post(INFER, json=body, headers=headers)
        assert refused.status_code == 400, refused.text
        assert message in refused.json()["error"]
        after = f"after-{uuid.uuid4()}"
        assert http.post(INFER, json=v2_body(["a normal review"]), headers={"x-request-id": after}).status_code == 200
    wait_for(lambda: logged(served, after), "the next request's log row", timeout=30)


@pytest.mark.parametrize(
    ("path", "content", "content_type"),
    [
        (INFER, b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["bad \\ud800"]}]}', "json"),
        (PREDICT, b'{"instances": ["broken \\udfff text"]}', "text/plain"),
    ],
)
def test_a_lone_surrogate_is_400_and_does_not_fail_its_neighbours(
    served: Served, path: str, content: bytes, content_type: str
) -> None:
    # JSON may carry "\ud800"; Python's parser turns it into a str that is not UTF-8 (tokenizer and Postgres refuse).
    headers = {"content-type": "application/json" if content_type == "json" else content_type}
    with served.client() as http:
        bad = http.post(path, content=content, headers=headers)
        good = http.post(PREDICT, json={"instances": ["fine"]})
    assert bad.status_code == 400 and "lone surrogate" in bad.json()["error"], bad.text
    assert good.status_code == 200


# --- nobody can take the model away -----------------------------------------------------------------------


def test_model_repository_routes_are_not_served(served: Served) -> None:
    with served.client() as http:
        for action in ("unload", "load"):
            response = http.post(f"/v2/repository/models/sentiment/{action}")
            assert response.status_code in {404, 405}, (action, response.status_code, response.text)
        assert http.post(INFER, json=v2_body(["still here"])).status_code == 200
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/health/ready").json() == {"ready": True}
        paths = http.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/v2/repository")]


def test_model_repository_rpcs_are_refused(served: Served) -> None:
    channel = grpc.insecure_channel(served.process.grpc_target)
    try:
        stub = GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="sentiment"))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as caught:
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="sentiment"))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert stub.ModelReady(pb.ModelReadyRequest(name="sentiment")).ready
    finally:
        channel.close()


# --- request size -----------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_declared_or_streamed(served: Served) -> None:
    big = b'{"instances": ["' + b"x" * (5 * 1024 * 1024) + b'"]}'

    def chunks() -> object:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    with served.client() as http:
        declared = http.post(PREDICT, content=big, headers={"content-type": "application/json"})
        streamed = http.post(PREDICT, content=chunks(), headers={"content-type": "application/json"})
        feedback = http.post(
            "/v1/feedback", content=chunks(), headers={"content-type": "application/json", **FEEDBACK_AUTH}
        )
        assert http.post(PREDICT, json={"instances": ["small"]}).status_code == 200
    for response in (declared, streamed, feedback):
        assert response.status_code == 413, response.text
        assert "over the limit" in response.json()["error"]


# --- feedback: authenticated, write-once, scoped to the deployment ------------------------------------------


def predict_one(served: Served, text: str = "feedback target") -> str:
    with served.client() as http:
        response = http.post(PREDICT, json={"instances": [text]})
    assert response.status_code == 200, response.text
    prediction_id: str = response.json()["predictions"][0]["prediction_id"]
    wait_for(lambda: served.rows("id = :i", i=uuid.UUID(prediction_id)), "the prediction's log row")
    return prediction_id


def test_feedback_needs_the_token(served: Served) -> None:
    prediction_id = predict_one(served)
    body = {"prediction_id": prediction_id, "label": "positive"}
    with served.client() as http:
        anonymous = http.post("/v1/feedback", json=body)
        wrong = http.post("/v1/feedback", json=body, headers={"authorization": "Bearer not-the-token"})
    for response in (anonymous, wrong):
        assert response.status_code == 401 and "Bearer" in response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"
    (row,) = served.rows("id = :i", i=uuid.UUID(prediction_id))
    assert row["feedback_label"] is None and row["feedback_at"] is None


def test_feedback_is_written_once_and_its_time_never_moves(served: Served) -> None:
    prediction_id = predict_one(served)
    with served.client() as http:
        http.headers.update(FEEDBACK_AUTH)
        first = http.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "negative"})
        again = http.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "negative"})
        changed = http.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "positive"})
    assert first.status_code == 200 and again.status_code == 200, (first.text, again.text)
    assert again.json()["feedback_at"] == first.json()["feedback_at"]  # acknowledged, not re-stamped
    assert changed.status_code == 409 and "already has the feedback label 'negative'" in changed.json()["error"]
    (row,) = served.rows("id = :i", i=uuid.UUID(prediction_id))
    assert row["feedback_label"] == "negative"
    assert row["feedback_at"].isoformat() == first.json()["feedback_at"]


def test_feedback_only_reaches_this_deployments_predictions(served: Served) -> None:
    prediction_id = predict_one(served)
    with served.engine.begin() as conn:  # as if another deployment's predictor had logged it
        conn.execute(
            sa.text("UPDATE prediction_logs SET deployment_id = 'other-ns/other' WHERE id = :i"),
            {"i": uuid.UUID(prediction_id)},
        )
    with served.client() as http:
        response = http.post(
            "/v1/feedback", json={"prediction_id": prediction_id, "label": "positive"}, headers=FEEDBACK_AUTH
        )
    assert response.status_code == 404, response.text
    (row,) = served.rows("id = :i", i=uuid.UUID(prediction_id))
    assert row["feedback_label"] is None and row["deployment_id"] != DEPLOYMENT_ID
