"""Property: whatever a v2 request carries, decode_v2 answers with texts or an InferenceInputError (a 400), never
another exception (a 500)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.protocol.infer_type import InferInput, InferRequest, serialize_byte_tensor

from mlcore.errors import InferenceInputError
from predictor import codecs

pytestmark = pytest.mark.unit

LIMITS = codecs.TextLimits(max_chars=50, max_items=4)
scalars = st.one_of(
    st.text(max_size=60), st.binary(max_size=60), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans()
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))


@st.composite
def requests(draw: st.DrawFn) -> InferRequest:
    inputs = []
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["text", "review", ""]))
        datatype = draw(st.sampled_from(["BYTES", "FP32", "INT64", "bogus"]))
        shape = draw(st.lists(st.integers(-2, 6), max_size=3))
        if draw(st.booleans()):
            raw = draw(st.lists(st.binary(max_size=20), max_size=5))
            tensor = InferInput(name, shape, datatype)
            tensor._raw_data = serialize_byte_tensor(np.array(raw, dtype=np.object_)).tobytes()
            if draw(st.booleans()):  # truncated framing
                tensor._raw_data = tensor._raw_data[: draw(st.integers(0, len(tensor._raw_data)))]
        else:
            tensor = InferInput(name, shape, datatype, data=draw(st.lists(values, max_size=5)))
        inputs.append(tensor)
    parameters = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["return_probabilities", "x"]), scalars)))
    request_id = draw(st.one_of(st.none(), st.text(max_size=140)))
    return InferRequest(model_name="sentiment", infer_inputs=inputs, request_id=request_id, parameters=parameters)


@given(request=requests())
@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_decode_v2_accepts_or_refuses_clearly(request: InferRequest) -> None:
    try:
        decoded = codecs.decode_v2(request, LIMITS)
        codecs.validate_request_id(decoded.request_id)
    except InferenceInputError:
        return
    assert decoded.texts and all(isinstance(t, str) and t.strip() for t in decoded.texts)
    assert all("\x00" not in t for t in decoded.texts)
    for text in decoded.texts:
        text.encode("utf-8")  # what the tokenizer and Postgres will need
