"""PREDICTOR_ACCESS_LOG: per-request access and timing lines when asked for, and none of their cost otherwise."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fixtures.models import publish_tiny_model
from tests.fixtures.predictor_server import PredictorProcess, fresh_database, start_predictor, wait_for
from tests.fixtures.services import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INFER = "/v2/models/sentiment/infer"
BODY = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a fine film"]}]}
# kserve's TimingMiddleware logs "<metric name>: <seconds> [... 'time:wall']" to kserve.trace per request.
TIMING_LINE = "'time:wall'"


def serve_one_request(tmp: Path, postgres: PostgresServer, env: dict[str, str]) -> PredictorProcess:
    model_uri = publish_tiny_model((tmp / "store").as_uri(), "sentiment", "1")
    process = start_predictor(
        tmp / "p", ["--model_dir", model_uri.removeprefix("file://")], fresh_database(postgres), env
    )
    try:
        with httpx.Client(base_url=process.base_url, timeout=30) as http:
            assert http.post(INFER, json=BODY).status_code == 200
    except BaseException:
        process.stop()  # the callers stop it otherwise
        raise
    return process


def test_access_log_on_writes_timing_and_access_lines(postgres_server: PostgresServer, tmp_path: Path) -> None:
    process = serve_one_request(tmp_path, postgres_server, {"PREDICTOR_ACCESS_LOG": "true"})
    try:
        wait_for(lambda: TIMING_LINE in process.log_text(), "kserve's timing line for the request")
        log = process.log_text()
        assert "v2.models.sentiment.infer" in log
        assert f"POST {INFER}" in log
    finally:
        process.stop()


def test_access_log_off_writes_neither(postgres_server: PostgresServer, tmp_path: Path) -> None:
    process = serve_one_request(tmp_path, postgres_server, {})
    try:
        process.stop()
        log = process.log_text()
        assert "predictor ready" in log  # the log was captured
        assert TIMING_LINE not in log
        assert f"POST {INFER}" not in log
    finally:
        process.stop()
