"""Request/response codecs for the Open Inference Protocol v2 (REST and gRPC) and KServe v1.

Pure translation and validation between wire payloads and (texts, options) / predictions; no model, no I/O.
Every client mistake raises InferenceInputError with a message that says what to send instead.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, to_http_parameters

from mlcore.errors import InferenceInputError
from predictor.settings import MAX_TEXT_CHARS

INPUT_NAME = "text"
OUTPUT_LABEL = "label"
OUTPUT_SCORE = "score"
OUTPUT_ID = "prediction_id"
OUTPUT_PROBABILITIES = "probabilities"
PARAM_PROBABILITIES = "return_probabilities"
# prediction_logs.request_id is String(128): a longer id would make the database refuse the row.
MAX_REQUEST_ID_CHARS = 128


@dataclass(frozen=True)
class TextLimits:
    max_chars: int = MAX_TEXT_CHARS
    max_items: int = 64


@dataclass
class DecodedRequest:
    texts: list[str]
    return_probabilities: bool = False
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    prediction_id: str
    label: str
    score: float
    probabilities: list[float]


def validate_texts(texts: list[Any], limits: TextLimits) -> list[str]:
    if not texts:
        raise InferenceInputError("no texts given: send at least one")
    if len(texts) > limits.max_items:
        raise InferenceInputError(f"batch of {len(texts)} texts is over the maximum of {limits.max_items} per request")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InferenceInputError(f"text[{index}] must be a string, got {type(text).__name__}")
        if not text.strip():
            raise InferenceInputError(f"text[{index}] is empty or whitespace only")
        if len(text) > limits.max_chars:
            raise InferenceInputError(
                f"text[{index}] has {len(text)} characters, over the maximum of {limits.max_chars}"
            )
        _check_characters(text, f"text[{index}]")
    return list(texts)


def _check_characters(value: str, what: str) -> None:
    # PostgreSQL text cannot hold NUL, and a lone surrogate (legal in JSON "\ud800") is not UTF-8: either would
    # fail the tokenizer or the log insert, so neither gets past the edge.
    if "\x00" in value:
        raise InferenceInputError(f"{what} contains a NUL character (U+0000), which is not accepted")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InferenceInputError(
            f"{what} is not valid Unicode: a lone surrogate at position {exc.start} (send UTF-8 text)"
        ) from None


def validate_request_id(value: Any) -> str | None:
    """The x-request-id header or v2 "id": at most MAX_REQUEST_ID_CHARS printable characters, or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InferenceInputError(f"request id must be a string, got {type(value).__name__}")
    if len(value) > MAX_REQUEST_ID_CHARS:
        raise InferenceInputError(f"request id has {len(value)} characters, over the maximum of {MAX_REQUEST_ID_CHARS}")
    _check_characters(value, "request id")
    return value


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise InferenceInputError(f"parameter {name!r} must be a boolean, got {value!r}")


# --- v2 -----------------------------------------------------------------------------------------------------


def decode_v2(request: InferRequest, limits: TextLimits) -> DecodedRequest:
    inputs = request.inputs or []
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        names = [i.name for i in inputs]
        raise InferenceInputError(f"expected exactly one input tensor named {INPUT_NAME!r}, got {names}")
    tensor = inputs[0]
    if tensor.datatype != "BYTES":
        raise InferenceInputError(f"input {INPUT_NAME!r} must have datatype BYTES, got {tensor.datatype}")
    shape = list(tensor.shape or [])
    if len(shape) != 1:
        raise InferenceInputError(f"input {INPUT_NAME!r} must have shape [N], got {shape}")
    values = _tensor_values(tensor, shape)
    texts = validate_texts([_as_text(v, i) for i, v in enumerate(values)], limits)
    params = to_http_parameters(request.parameters) if request.parameters else {}
    wanted = _as_bool(params.get(PARAM_PROBABILITIES, False), PARAM_PROBABILITIES)
    if request.request_outputs and any(o.name == OUTPUT_PROBABILITIES for o in request.request_outputs):
        wanted = True
    return DecodedRequest(texts=texts, return_probabilities=wanted, request_id=request.id or None)


def _tensor_values(tensor: InferInput, shape: list[int]) -> list[Any]:
    """The elements of a [N] BYTES tensor, decoded by KServe's own InferInput.as_numpy(): JSON `data`, gRPC
    `bytes_contents` and `raw_input_contents`, and the REST binary extension alike."""
    data = tensor.data
    if data is not None and not isinstance(data, list | np.ndarray):
        raise InferenceInputError(f"input {INPUT_NAME!r}: data must be a list of strings")
    if isinstance(data, list) and any(isinstance(v, list) for v in data):
        raise InferenceInputError(f"input {INPUT_NAME!r}: data must be a flat list of strings for shape [N]")
    sent = len(data) if isinstance(data, list) else data.size if isinstance(data, np.ndarray) else 0
    if sent and sent != shape[0]:
        raise InferenceInputError(f"input {INPUT_NAME!r} has shape {shape} but holds {sent} elements")
    try:
        array = tensor.as_numpy()
    except Exception as exc:  # raw contents: bad framing (struct.error), or more or fewer elements than the shape
        raise InferenceInputError(
            f"input {INPUT_NAME!r}: its contents do not decode as BYTES of shape {shape}: {exc}"
        ) from None
    values = list(array.reshape(-1))
    if shape[0] != len(values):
        raise InferenceInputError(f"input {INPUT_NAME!r} has shape {shape} but holds {len(values)} elements")
    return values


def _as_text(value: Any, index: int) -> Any:
    if isinstance(value, bytes | np.bytes_):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InferenceInputError(f"text[{index}] is not valid UTF-8") from None
    return value


def encode_v2(
    request: InferRequest,
    predictions: list[Prediction],
    *,
    model_name: str,
    model_version: str | None,
    response_id: str,
    labels: list[str],
    return_probabilities: bool,
) -> InferResponse:
    n = len(predictions)
    outputs = [
        InferOutput(OUTPUT_LABEL, [n], "BYTES", [p.label for p in predictions]),
        InferOutput(OUTPUT_SCORE, [n], "FP32", [float(p.score) for p in predictions]),
        InferOutput(OUTPUT_ID, [n], "BYTES", [p.prediction_id for p in predictions]),
    ]
    if return_probabilities:
        flat = [float(x) for p in predictions for x in p.probabilities]
        outputs.append(
            InferOutput(OUTPUT_PROBABILITIES, [n, len(labels)], "FP32", flat, parameters={"labels": ",".join(labels)})
        )
    return InferResponse(
        response_id=response_id,
        model_name=model_name,
        model_version=model_version,
        infer_outputs=outputs,
        from_grpc=request.from_grpc,
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )


def v2_input_metadata() -> list[dict[str, Any]]:
    return [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}]


def v2_output_metadata(num_labels: int) -> list[dict[str, Any]]:
    return [
        {"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [-1]},
        {"name": OUTPUT_SCORE, "datatype": "FP32", "shape": [-1]},
        {"name": OUTPUT_ID, "datatype": "BYTES", "shape": [-1]},
        {"name": OUTPUT_PROBABILITIES, "datatype": "FP32", "shape": [-1, num_labels]},
    ]


# --- v1 -----------------------------------------------------------------------------------------------------


def decode_v1(body: Any, limits: TextLimits) -> DecodedRequest:
    """`{"instances": ["..", ..]}`, `{"instances": [{"text": ".."}]}` or a bare list of either."""
    wanted = False
    if isinstance(body, bytes | str):  # a body sent without a JSON content type reaches us undecoded
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InferenceInputError(f"malformed JSON: {exc}") from None
    if isinstance(body, dict):
        if "instances" not in body:
            raise InferenceInputError('v1 request must be {"instances": [...]} or a list of {"text": ...} objects')
        instances = body["instances"]
        params = body.get("parameters")
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise InferenceInputError('"parameters" must be an object')
        wanted = _as_bool(params.get(PARAM_PROBABILITIES, False), PARAM_PROBABILITIES)
    elif isinstance(body, list):
        instances = body
    else:
        raise InferenceInputError('v1 request must be {"instances": [...]} or a list of {"text": ...} objects')
    if not isinstance(instances, list):
        raise InferenceInputError('"instances" must be a list')
    texts: list[Any] = []
    for index, item in enumerate(instances):
        if isinstance(item, dict):
            if set(item) != {"text"}:
                raise InferenceInputError(f'instances[{index}] must be {{"text": "..."}}, got keys {sorted(item)}')
            texts.append(item["text"])
        else:
            texts.append(item)
    return DecodedRequest(texts=validate_texts(texts, limits), return_probabilities=wanted)


def encode_v1(predictions: list[Prediction], *, labels: list[str], return_probabilities: bool) -> dict[str, Any]:
    out = []
    for p in predictions:
        item: dict[str, Any] = {"label": p.label, "score": p.score, "prediction_id": p.prediction_id}
        if return_probabilities:
            item["probabilities"] = dict(zip(labels, p.probabilities, strict=True))
        out.append(item)
    return {"predictions": out}


# --- one interface over both protocols ------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a request is answered with, whatever its protocol."""

    predictions: list[Prediction]
    model_name: str
    model_version: str | None
    labels: list[str]
    return_probabilities: bool


class Codec(ABC):
    """Decode a request and encode its answer for one protocol; chosen once per request by `codec_for`."""

    protocol: str  # "v1" or "v2": the request latency metric's label

    @abstractmethod
    def decode(self, payload: Any, limits: TextLimits) -> DecodedRequest: ...

    @abstractmethod
    def encode(self, payload: Any, answer: Answer) -> Any: ...


class V1Codec(Codec):
    protocol = "v1"

    def decode(self, payload: Any, limits: TextLimits) -> DecodedRequest:
        return decode_v1(payload, limits)

    def encode(self, payload: Any, answer: Answer) -> dict[str, Any]:
        return encode_v1(answer.predictions, labels=answer.labels, return_probabilities=answer.return_probabilities)


class V2Codec(Codec):
    protocol = "v2"

    def decode(self, payload: Any, limits: TextLimits) -> DecodedRequest:
        return decode_v2(payload, limits)

    def encode(self, payload: Any, answer: Answer) -> InferResponse:
        return encode_v2(
            payload,
            answer.predictions,
            model_name=answer.model_name,
            model_version=answer.model_version,
            response_id=payload.id or str(uuid.uuid4()),
            labels=answer.labels,
            return_probabilities=answer.return_probabilities,
        )


V1 = V1Codec()
V2 = V2Codec()


def codec_for(payload: Any) -> Codec:
    """KServe hands v2 requests (REST and gRPC) in as InferRequest objects, v1 bodies as parsed JSON."""
    return V2 if isinstance(payload, InferRequest) else V1


def to_predictions(probabilities: np.ndarray, labels: list[str], ids: list[str]) -> list[Prediction]:
    winners = probabilities.argmax(axis=1)
    return [
        Prediction(
            prediction_id=ids[i],
            label=labels[int(w)],
            score=float(probabilities[i, w]),
            probabilities=[float(x) for x in probabilities[i]],
        )
        for i, w in enumerate(winners)
    ]
