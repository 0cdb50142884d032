"""Open Inference Protocol v2 (REST + gRPC) and v1 conformance of a real predictor process; feedback; metrics."""

from __future__ import annotations

import hashlib
import uuid

import grpc
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.fixtures.predictor_server import DEPLOYMENT_ID, FEEDBACK_AUTH, MODEL_VERSION, Served, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INFER = "/v2/models/sentiment/infer"
LABELS = {"negative", "positive"}
PLATFORMS = {"torch": "pytorch_huggingface", "onnx": "onnxruntime_onnx", "onnx-int8": "onnxruntime_onnx_int8"}
# Dynamic int8 quantizes activations per batch tensor: a text's score moves slightly with its batch company.
BATCH_TOLERANCE = {"torch": 1e-4, "onnx": 1e-4, "onnx-int8": 0.02}


def v2_body(texts: list[object], **extra: object) -> dict[str, object]:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}], **extra}


def outputs(response_json: dict[str, object]) -> dict[str, dict[str, object]]:
    return {o["name"]: o for o in response_json["outputs"]}  # type: ignore[index,union-attr]


# --- v2 REST: health and metadata -------------------------------------------------------------------------


def test_v2_health_and_server_metadata(served: Served) -> None:
    with served.client() as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/health/ready").json() == {"ready": True}
        assert http.get("/v2/models/sentiment/ready").json() == {"name": "sentiment", "ready": True}
        server = http.get("/v2").json()
        assert server["name"] == "kserve" and server["version"]
        missing = http.get("/v2/models/other/ready")
        assert missing.status_code == 404 and "other" in missing.json()["error"]


def test_v2_model_metadata_lists_tensors_and_version(served: Served) -> None:
    with served.client() as http:
        meta = http.get("/v2/models/sentiment").json()
    assert meta["name"] == "sentiment"
    assert meta["versions"] == [MODEL_VERSION]
    assert meta["platform"] == PLATFORMS[served.runtime]  # which runtime serves it
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "score", "datatype": "FP32", "shape": [-1]},
        {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]


# --- v2 REST: inference -----------------------------------------------------------------------------------


def test_v2_infer_returns_label_score_and_ids(served: Served) -> None:
    texts = ["A wonderful film.", "Dull and far too long.", "It was fine."]
    with served.client() as http:
        response = http.post(INFER, json=v2_body(texts, id="req-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-1" and body["model_name"] == "sentiment" and body["model_version"] == MODEL_VERSION
    out = outputs(body)
    assert set(out) == {"label", "score", "prediction_id"}
    assert out["label"]["datatype"] == "BYTES" and out["label"]["shape"] == [3]
    assert set(out["label"]["data"]) <= LABELS
    assert out["score"]["datatype"] == "FP32" and all(0.5 <= s <= 1.0 for s in out["score"]["data"])
    ids = out["prediction_id"]["data"]
    assert len({str(uuid.UUID(i)) for i in ids}) == 3


def test_v2_infer_probabilities_on_request(served: Served) -> None:
    with served.client() as http:
        body = http.post(INFER, json=v2_body(["good", "bad"], parameters={"return_probabilities": True})).json()
    out = outputs(body)
    probabilities = out["probabilities"]
    assert probabilities["datatype"] == "FP32" and probabilities["shape"] == [2, 2]
    rows = [probabilities["data"][0:2], probabilities["data"][2:4]]
    for row, score in zip(rows, out["score"]["data"], strict=True):
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
        assert max(row) == pytest.approx(score, abs=1e-6)


def test_v2_same_text_same_answer_alone_or_in_batch(served: Served) -> None:
    with served.client() as http:
        alone = outputs(http.post(INFER, json=v2_body(["Just a short one."])).json())
        batched = outputs(http.post(INFER, json=v2_body(["Just a short one.", "x " * 40])).json())
    assert alone["label"]["data"][0] == batched["label"]["data"][0]
    assert alone["score"]["data"][0] == pytest.approx(batched["score"]["data"][0], abs=BATCH_TOLERANCE[served.runtime])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (v2_body([""]), "empty"),
        (v2_body(["   \n\t"]), "whitespace"),
        (v2_body(["x" * 5001]), "5001 characters"),
        (v2_body(["ok"] * 9), "over the maximum of 8"),
        ({"inputs": [{"name": "review", "shape": [1], "datatype": "BYTES", "data": ["ok"]}]}, "named 'text'"),
        ({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, "datatype BYTES"),
        ({"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["ok"]}]}, "shape [N]"),
        ({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["ok"]}]}, "holds 1 elements"),
        ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [3]}]}, "must be a string"),
        ({"inputs": []}, "exactly one input"),
        ({"foo": 1}, "inputs"),
        (v2_body(["ok"], parameters={"return_probabilities": "maybe"}), "boolean"),
    ],
)
def test_v2_client_errors_are_400_with_a_message(served: Served, body: dict[str, object], message: str) -> None:
    with served.client() as http:
        response = http.post(INFER, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_v2_malformed_json_is_400(served: Served) -> None:
    with served.client() as http:
        response = http.post(INFER, content=b'{"inputs": [', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]


# --- v1 ---------------------------------------------------------------------------------------------------


def test_v1_instances_and_objects(served: Served) -> None:
    with served.client() as http:
        plain = http.post("/v1/models/sentiment:predict", json={"instances": ["great", "awful"]})
        objects = http.post("/v1/models/sentiment:predict", json=[{"text": "great"}])
        with_probabilities = http.post(
            "/v1/models/sentiment:predict",
            json={"instances": [{"text": "great"}], "parameters": {"return_probabilities": True}},
        )
    assert plain.status_code == 200 and objects.status_code == 200
    predictions = plain.json()["predictions"]
    assert len(predictions) == 2
    for p in predictions:
        assert set(p) == {"label", "score", "prediction_id"} and p["label"] in LABELS
    assert objects.json()["predictions"][0]["label"] == predictions[0]["label"]
    tolerance = BATCH_TOLERANCE[served.runtime]  # "great" alone vs beside "awful"
    assert objects.json()["predictions"][0]["score"] == pytest.approx(predictions[0]["score"], abs=tolerance)
    (single,) = with_probabilities.json()["predictions"]
    assert set(single["probabilities"]) == LABELS
    assert single["probabilities"][single["label"]] == pytest.approx(single["score"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"instances": [""]}', "empty"),
        (b'{"instances": ["ok", {"txt": "x"}]}', "instances[1]"),
        (b'{"rows": ["ok"]}', "instances"),
        (b'{"instances": [', "Unrecognized request format"),
    ],
)
def test_v1_client_errors_are_400(served: Served, content: bytes, message: str) -> None:
    with served.client() as http:
        response = http.post(
            "/v1/models/sentiment:predict", content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


# --- gRPC -------------------------------------------------------------------------------------------------


@pytest.fixture
def grpc_stub(served: Served) -> GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(served.process.grpc_target)
    yield GRPCInferenceServiceStub(channel)
    channel.close()


def grpc_request(texts: list[bytes], **kwargs: object) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=kwargs.pop("name", "text"),  # type: ignore[arg-type]
        datatype=kwargs.pop("datatype", "BYTES"),  # type: ignore[arg-type]
        shape=kwargs.pop("shape", [len(texts)]),  # type: ignore[arg-type]
        contents=pb.InferTensorContents(bytes_contents=texts),
    )
    return pb.ModelInferRequest(model_name="sentiment", inputs=[tensor], **kwargs)  # type: ignore[arg-type]


def test_grpc_health_and_metadata(grpc_stub: GRPCInferenceServiceStub, served: Served) -> None:
    assert grpc_stub.ServerLive(pb.ServerLiveRequest()).live
    assert grpc_stub.ServerReady(pb.ServerReadyRequest()).ready
    assert grpc_stub.ModelReady(pb.ModelReadyRequest(name="sentiment")).ready
    meta = grpc_stub.ModelMetadata(pb.ModelMetadataRequest(name="sentiment"))
    assert meta.name == "sentiment" and list(meta.versions) == [MODEL_VERSION]
    assert meta.platform == PLATFORMS[served.runtime]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("text", "BYTES", [-1])]
    assert [t.name for t in meta.outputs] == ["label", "score", "prediction_id", "probabilities"]


def test_grpc_infer(grpc_stub: GRPCInferenceServiceStub, served: Served) -> None:
    request = grpc_request(
        [b"A wonderful film.", b"Dull."],
        id="grpc-1",
        parameters={"return_probabilities": pb.InferParameter(bool_param=True)},
    )
    response = grpc_stub.ModelInfer(request)
    assert response.id == "grpc-1" and response.model_version == MODEL_VERSION
    by_name = {o.name: o for o in response.outputs}
    assert set(by_name) == {"label", "score", "prediction_id", "probabilities"}
    labels = [b.decode() for b in by_name["label"].contents.bytes_contents]
    assert len(labels) == 2 and set(labels) <= LABELS
    assert list(by_name["probabilities"].shape) == [2, 2]
    assert len(by_name["probabilities"].contents.fp32_contents) == 4
    ids = [b.decode() for b in by_name["prediction_id"].contents.bytes_contents]
    # The same REST text gives the same answer over gRPC.
    with served.client() as http:
        rest = outputs(http.post(INFER, json=v2_body(["A wonderful film.", "Dull."])).json())
    assert rest["label"]["data"] == labels
    assert all(uuid.UUID(i) for i in ids)


@pytest.mark.parametrize(
    ("texts", "kwargs", "message"),
    [
        ([b"  "], {}, "empty"),
        ([b"ok"], {"name": "review"}, "named 'text'"),
        ([b"ok"], {"datatype": "INT32"}, "datatype BYTES"),
        ([b"ok"] * 9, {}, "over the maximum"),
        ([b"\xff\xfe"], {}, "UTF-8"),
    ],
)
def test_grpc_client_errors_are_invalid_argument(
    grpc_stub: GRPCInferenceServiceStub, texts: list[bytes], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.ModelInfer(grpc_request(texts, **kwargs))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


# --- prediction logging -----------------------------------------------------------------------------------


def test_every_prediction_is_logged_with_exact_fields(served: Served) -> None:
    request_id = f"exact-{uuid.uuid4()}"
    text = f"An exactly known review {uuid.uuid4()}."
    with served.client() as http:
        body = http.post(
            INFER, json=v2_body([text], parameters={"return_probabilities": True}), headers={"x-request-id": request_id}
        ).json()
    out = outputs(body)
    prediction_id = out["prediction_id"]["data"][0]
    (row,) = wait_for(lambda: served.rows("request_id = :r", r=request_id), "the log row")
    assert str(row["id"]) == prediction_id
    assert row["input_text"] == text
    assert row["input_hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert row["predicted_sentiment"] == out["label"]["data"][0]
    assert row["confidence"] == pytest.approx(out["score"]["data"][0], abs=1e-6)
    expected = dict(zip(["negative", "positive"], out["probabilities"]["data"], strict=True))
    assert row["probabilities"] == pytest.approx(expected)
    assert row["model_name"] == "sentiment"
    assert row["model_version"] == MODEL_VERSION
    assert row["deployment_id"] == DEPLOYMENT_ID
    assert row["role"] == "canary"
    assert row["status"] == "ok" and row["error_message"] is None
    assert row["latency_ms"] > 0
    assert row["predicted_at"].tzinfo is not None
    assert row["feedback_label"] is None and row["feedback_at"] is None


def test_client_errors_are_not_logged(served: Served) -> None:
    request_id = f"bad-{uuid.uuid4()}"
    with served.client() as http:
        assert http.post(INFER, json=v2_body([""]), headers={"x-request-id": request_id}).status_code == 400
        # A good request after it: once its row is in, the bad one would have been too.
        http.post(INFER, json=v2_body(["fine"]), headers={"x-request-id": request_id + "-ok"})
    wait_for(lambda: served.rows("request_id = :r", r=request_id + "-ok"), "the good request's row")
    assert served.rows("request_id = :r", r=request_id) == []


# --- feedback ---------------------------------------------------------------------------------------------


def test_feedback_sets_label_even_for_a_row_still_queued(served: Served) -> None:
    with served.client() as http:
        prediction = http.post("/v1/models/sentiment:predict", json={"instances": ["feedback please"]}).json()
        prediction_id = prediction["predictions"][0]["prediction_id"]
        # Sent at once: the row may still be in the writer's queue; the route flushes before it gives up.
        response = http.post(
            "/v1/feedback", json={"prediction_id": prediction_id, "label": "negative"}, headers=FEEDBACK_AUTH
        )
    assert response.status_code == 200, response.text
    assert response.json()["label"] == "negative"
    (row,) = served.rows("id = :i", i=uuid.UUID(prediction_id))
    assert row["feedback_label"] == "negative" and row["feedback_at"] is not None


def test_feedback_errors(served: Served) -> None:
    with served.client() as http:
        http.headers.update(FEEDBACK_AUTH)
        predicted = http.post("/v1/models/sentiment:predict", json={"instances": ["x y z"]}).json()
        prediction_id = predicted["predictions"][0]["prediction_id"]
        unknown = http.post("/v1/feedback", json={"prediction_id": str(uuid.uuid4()), "label": "positive"})
        bad_label = http.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "neutral"})
        bad_id = http.post("/v1/feedback", json={"prediction_id": "42", "label": "positive"})
        malformed = http.post("/v1/feedback", content=b"{", headers={"content-type": "application/json"})
        missing = http.post("/v1/feedback", json={"label": "positive"})
    assert unknown.status_code == 404 and "no prediction" in unknown.json()["error"]
    assert bad_label.status_code == 400 and "not one of the model's labels" in bad_label.json()["error"]
    assert bad_id.status_code == 400 and "UUID" in bad_id.json()["error"]
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
    assert missing.status_code == 400


# --- metrics ----------------------------------------------------------------------------------------------


def test_metrics_are_exposed(served: Served) -> None:
    with served.client() as http:
        http.post(INFER, json=v2_body(["metrics one", "metrics two"]))
        wait_for(lambda: "mlp_prediction_log_rows_written_total 0.0" not in http.get("/metrics").text, "a write")
        text = http.get("/metrics").text
    for name in (
        "mlp_predictions_total{",
        "mlp_inference_latency_seconds_bucket",
        "mlp_batch_size_bucket",
        "mlp_prediction_confidence_bucket",
        "mlp_prediction_log_queue_depth",
        "mlp_prediction_log_rows_written_total",
        "mlp_prediction_log_rows_retried_total",
        "mlp_prediction_log_rows_spilled_total",
        "mlp_prediction_log_rows_failed_total",
    ):
        assert name in text, name
    assert f'model_version="{MODEL_VERSION}"' in text and 'role="canary"' in text
    assert any(line.startswith("mlp_predictions_total{") and 'label="' in line for line in text.splitlines())
