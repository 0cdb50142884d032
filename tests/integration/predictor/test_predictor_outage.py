"""Postgres goes away while predictions flow: every request still succeeds and no log row is lost."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import pytest

from tests.fixtures.models import publish_tiny_model
from tests.fixtures.predictor_server import (
    FEEDBACK_AUTH,
    count_logged_predictions,
    fresh_database,
    start_predictor,
    wait_for,
)
from tests.fixtures.services import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_ENV = {
    # A small queue, so the outage overflows it into the spill file within a few requests.
    "PREDICTOR_LOG_QUEUE_SIZE": "20",
    "PREDICTOR_LOG_BATCH_ROWS": "5",
    "PREDICTOR_LOG_RETRY_MAX_WAIT_S": "0.5",
}


def metric(base_url: str, name: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"metric {name} not exposed")


class Traffic:
    """Sequential requests from a background thread, two texts each, until stopped; counts predictions."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.predictions = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            while not self._stop.is_set():
                texts = [f"outage review {uuid.uuid4()}", "and another one"]
                body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
                response = http.post("/v2/models/sentiment/infer", json=body)
                if response.status_code == 200:
                    self.predictions += 2
                else:
                    self.failures.append(f"{response.status_code}: {response.text}")

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A published version on local storage, served through --model_dir like KServe's /mnt/models mount."""
    uri = publish_tiny_model(tmp_path.as_uri() + "/store", "sentiment", "3")
    return Path(uri.removeprefix("file://"))


def test_outage_while_requests_flow_loses_nothing(
    postgres_server: PostgresServer, model_dir: Path, tmp_path: Path
) -> None:
    db_url = fresh_database(postgres_server)
    process = start_predictor(tmp_path / "p", ["--model_dir", str(model_dir)], db_url, OUTAGE_ENV)
    try:
        with Traffic(process.base_url) as traffic:
            wait_for(lambda: count_logged_predictions(db_url) >= 10, "rows before the outage")
            spilled_before = metric(process.base_url, "mlp_prediction_log_rows_spilled_total")
            postgres_server.stop()
            # Requests keep flowing: the queue fills, the writer retries, the overflow is spilled to disk.
            wait_for(
                lambda: metric(process.base_url, "mlp_prediction_log_rows_spilled_total") >= spilled_before + 10,
                "rows spilled during the outage",
            )
            ready = httpx.get(f"{process.base_url}/v2/health/ready", timeout=30)
            assert ready.status_code == 200  # readiness does not depend on the database
            postgres_server.start()
            written = metric(process.base_url, "mlp_prediction_log_rows_written_total")
            wait_for(
                lambda: metric(process.base_url, "mlp_prediction_log_rows_written_total") > written + 10,
                "writes after the recovery",
            )
        assert traffic.failures == []
        assert traffic.predictions > 0
        wait_for(
            lambda: count_logged_predictions(db_url) == traffic.predictions, f"{traffic.predictions} rows", timeout=120
        )
        wait_for(lambda: metric(process.base_url, "mlp_prediction_log_spill_pending_rows") == 0, "an empty spill")
        assert metric(process.base_url, "mlp_prediction_log_rows_retried_total") > 0
        assert metric(process.base_url, "mlp_prediction_log_rows_failed_total") == 0
        # Replays and retries never duplicate a row: the count stays equal once everything is in.
        assert count_logged_predictions(db_url) == traffic.predictions
    finally:
        if not postgres_server.running:
            postgres_server.start()
        process.stop()


def test_rows_spilled_at_shutdown_are_replayed_by_the_next_process(
    postgres_server: PostgresServer, model_dir: Path, tmp_path: Path
) -> None:
    db_url = fresh_database(postgres_server)
    workdir = tmp_path / "p"  # the same spill dir for both processes, like a pod's volume
    first = start_predictor(workdir, ["--model_dir", str(model_dir)], db_url, OUTAGE_ENV)
    try:
        postgres_server.stop()
        with httpx.Client(base_url=first.base_url, timeout=60) as http:
            for i in range(5):
                response = http.post("/v1/models/sentiment:predict", json={"instances": [f"shutdown {i}"]})
                assert response.status_code == 200
            # Feedback needs the database: while it is down the client is told to try again, not "unknown id".
            prediction_id = response.json()["predictions"][0]["prediction_id"]
            feedback = http.post(
                "/v1/feedback", json={"prediction_id": prediction_id, "label": "positive"}, headers=FEEDBACK_AUTH
            )
            assert feedback.status_code == 503 and "try again" in feedback.json()["error"]
        assert first.stop() == 0
    finally:
        postgres_server.start()
        first.stop()
    spilled = list((workdir / "spill").glob("spill-*.jsonl"))
    assert spilled, "the queued rows should have been spilled at shutdown"
    second = start_predictor(workdir, ["--model_dir", str(model_dir)], db_url, OUTAGE_ENV)
    try:
        wait_for(lambda: count_logged_predictions(db_url) == 5, "the replayed rows")
        wait_for(lambda: not list((workdir / "spill").glob("spill-*.jsonl")), "the spill file to be removed")
    finally:
        second.stop()
