"""v2 / v1 codecs: what is accepted, what is refused (and with which message), what goes back on the wire."""

from __future__ import annotations

import re

import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput, serialize_byte_tensor

from mlcore.errors import InferenceInputError
from predictor import codecs

pytestmark = pytest.mark.unit

LIMITS = codecs.TextLimits(max_chars=20, max_items=3)
LABELS = ["negative", "positive"]


def v2(data: list[object], *, name: str = "text", datatype: str = "BYTES", shape: list[int] | None = None,
       parameters: dict[str, object] | None = None) -> InferRequest:  # fmt: skip
    tensor = InferInput(name, shape if shape is not None else [len(data)], datatype, data)
    return InferRequest("sentiment", [tensor], request_id="r-1", parameters=parameters)


def test_v2_decodes_texts_and_options() -> None:
    decoded = codecs.decode_v2(v2(["good", "bad"], parameters={"return_probabilities": True}), LIMITS)
    assert decoded.texts == ["good", "bad"]
    assert decoded.return_probabilities is True
    assert decoded.request_id == "r-1"
    assert codecs.decode_v2(v2(["good"]), LIMITS).return_probabilities is False


def test_v2_decodes_grpc_bytes_and_parameters() -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="text", datatype="BYTES", shape=[2], contents=pb.InferTensorContents(bytes_contents=[b"caf\xc3\xa9", b"x"])
    )
    message = pb.ModelInferRequest(
        model_name="sentiment", inputs=[tensor], parameters={"return_probabilities": pb.InferParameter(bool_param=True)}
    )
    decoded = codecs.decode_v2(InferRequest.from_grpc(message), LIMITS)
    assert decoded.texts == ["café", "x"]
    assert decoded.return_probabilities is True


def test_v2_decodes_raw_binary_contents() -> None:
    raw = serialize_byte_tensor(np.array([b"one", b"two"], dtype=np.object_)).item()
    tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[2])
    message = pb.ModelInferRequest(model_name="sentiment", inputs=[tensor], raw_input_contents=[raw])
    assert codecs.decode_v2(InferRequest.from_grpc(message), LIMITS).texts == ["one", "two"]


def test_requesting_the_probabilities_output_implies_the_option() -> None:
    request = v2(["good"])
    request.request_outputs = [RequestedOutput("probabilities")]
    assert codecs.decode_v2(request, LIMITS).return_probabilities is True


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (v2([]), "no texts"),
        (v2([""]), "empty or whitespace"),
        (v2([" \t\n"]), "empty or whitespace"),
        (v2(["x" * 21]), "21 characters, over the maximum of 20"),
        (v2(["a", "b", "c", "d"]), "batch of 4 texts is over the maximum of 3"),
        (v2(["ok"], name="input"), "named 'text'"),
        (v2(["ok"], datatype="FP32"), "datatype BYTES, got FP32"),
        (v2(["ok"], shape=[1, 1]), "shape [N], got [1, 1]"),
        (v2(["ok"], shape=[2]), "shape [2] but holds 1 elements"),
        (v2([["ok"]], shape=[1]), "flat list"),
        (v2([5]), "text[0] must be a string, got int"),
        (v2([b"\xff"]), "not valid UTF-8"),
        (v2(["ok"], parameters={"return_probabilities": 3}), "must be a boolean"),
        (InferRequest("sentiment", []), "exactly one input"),
    ],
)
def test_v2_refuses_bad_requests_with_a_clear_message(request_: InferRequest, message: str) -> None:
    with pytest.raises(InferenceInputError) as caught:
        codecs.decode_v2(request_, LIMITS)
    assert message in str(caught.value)


def test_v2_two_inputs_are_refused() -> None:
    request = InferRequest("sentiment", [InferInput("text", [1], "BYTES", ["a"]), InferInput("x", [1], "BYTES", ["b"])])
    with pytest.raises(InferenceInputError, match="exactly one input tensor named 'text'"):
        codecs.decode_v2(request, LIMITS)


def predictions() -> list[codecs.Prediction]:
    return codecs.to_predictions(np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32), LABELS, ["id-1", "id-2"])


def test_to_predictions_picks_the_winning_label() -> None:
    first, second = predictions()
    assert (first.label, first.prediction_id) == ("positive", "id-1")
    assert first.score == pytest.approx(0.8)
    assert second.label == "negative" and second.probabilities == pytest.approx([0.9, 0.1])


def test_v2_response_over_rest() -> None:
    response = codecs.encode_v2(
        v2(["a", "b"]),
        predictions(),
        model_name="sentiment",
        model_version="3",
        response_id="r-1",
        labels=LABELS,
        return_probabilities=True,
    )
    body, _ = response.to_rest()
    assert body["model_version"] == "3" and body["id"] == "r-1"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["label"] == {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["positive", "negative"]}
    assert out["score"]["datatype"] == "FP32" and out["score"]["data"] == pytest.approx([0.8, 0.9])
    assert out["prediction_id"]["data"] == ["id-1", "id-2"]
    assert out["probabilities"]["shape"] == [2, 2]
    assert out["probabilities"]["data"] == pytest.approx([0.2, 0.8, 0.9, 0.1])


def test_v2_response_over_grpc_without_probabilities() -> None:
    message = codecs.encode_v2(
        v2(["a", "b"]),
        predictions(),
        model_name="sentiment",
        model_version="3",
        response_id="r-1",
        labels=LABELS,
        return_probabilities=False,
    ).to_grpc()
    by_name = {o.name: o for o in message.outputs}
    assert set(by_name) == {"label", "score", "prediction_id"}
    assert list(by_name["label"].contents.bytes_contents) == [b"positive", b"negative"]
    assert list(by_name["score"].contents.fp32_contents) == pytest.approx([0.8, 0.9])


@pytest.mark.parametrize(
    "body",
    [
        {"instances": ["good", "bad"]},
        {"instances": [{"text": "good"}, {"text": "bad"}]},
        [{"text": "good"}, {"text": "bad"}],
        ["good", "bad"],
        b'{"instances": ["good", "bad"]}',
    ],
)
def test_v1_accepted_shapes(body: object) -> None:
    assert codecs.decode_v1(body, LIMITS).texts == ["good", "bad"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": ["x"]}, "instances"),
        ({"instances": "x"}, "must be a list"),
        ({"instances": [{"review": "x"}]}, "instances[0]"),
        ({"instances": [""]}, "empty"),
        ({"instances": ["a"], "parameters": []}, "must be an object"),
        (42, "instances"),
        (b"{not json", "malformed JSON"),
    ],
)
def test_v1_refusals(body: object, message: str) -> None:
    with pytest.raises(InferenceInputError) as caught:
        codecs.decode_v1(body, LIMITS)
    assert message in str(caught.value)


def test_v1_response() -> None:
    body = codecs.encode_v1(predictions(), labels=LABELS, return_probabilities=True)
    assert body["predictions"][0]["label"] == "positive"
    assert body["predictions"][0]["prediction_id"] == "id-1"
    assert body["predictions"][1]["probabilities"] == pytest.approx({"negative": 0.9, "positive": 0.1})
    assert (
        "probabilities"
        not in codecs.encode_v1(predictions(), labels=LABELS, return_probabilities=False)["predictions"][0]
    )


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["fine", "nul \x00 inside"], "text[1] contains a NUL"),
        (["lone \ud800 surrogate"], "text[0] is not valid Unicode: a lone surrogate at position 5"),
    ],
)
def test_texts_postgres_or_the_tokenizer_cannot_take_are_refused(texts: list[str], message: str) -> None:
    with pytest.raises(InferenceInputError, match=re.escape(message)):
        codecs.validate_texts(texts, LIMITS)


def test_request_ids_are_limited_to_what_the_log_column_holds() -> None:
    assert codecs.validate_request_id("r" * codecs.MAX_REQUEST_ID_CHARS) == "r" * codecs.MAX_REQUEST_ID_CHARS
    assert codecs.validate_request_id("") is None and codecs.validate_request_id(None) is None
    with pytest.raises(InferenceInputError, match="129 characters, over the maximum of 128"):
        codecs.validate_request_id("r" * 129)
    with pytest.raises(InferenceInputError, match="NUL"):
        codecs.validate_request_id("a\x00b")
