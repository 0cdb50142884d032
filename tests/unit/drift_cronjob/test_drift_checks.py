"""Settings, verdicts (drift, quality, volume), window parsing, webhook payload and Prometheus registry."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from drift_cronjob.analysis import ColumnDrift, DriftResult
from drift_cronjob.checks import drift_condition, quality_condition, quality_of, volume_condition
from drift_cronjob.db import Target
from drift_cronjob.notify import WebhookError, WebhookNotifier, report_link, slack_payload
from drift_cronjob.pushgateway import build_registry, push
from drift_cronjob.reference import parse_reference_window, version_uri
from drift_cronjob.settings import DriftSettings, load_drift_settings
from mlcore.config import load_settings
from mlcore.db import MonitoringAlert
from mlcore.errors import ConfigurationError
from mlcore.model_version import card_labels
from mlcore.timeutil import parse_duration

pytestmark = pytest.mark.unit

TARGET = Target("ml/sentiment", "sentiment", "3", None)


# --- settings ------------------------------------------------------------------------------------------------


def test_settings_come_from_drift_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFT_MIN_ROWS", "25")
    monkeypatch.setenv("DRIFT_LOOKBACK_HOURS", "6")
    monkeypatch.setenv("DRIFT_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("DRIFT_NUM_METHOD", "psi")
    settings = load_drift_settings()
    assert settings.min_rows == 25 and settings.lookback_hours == 6 and settings.num_method == "psi"
    assert settings.alert_webhook_url is not None
    assert "9/hook" not in repr(settings)  # the webhook URL is a secret: never in logs


def test_chart_variable_names_without_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHGATEWAY_URL", "http://pushgateway:9091")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://hooks.example/T0/B0/x")
    settings = load_drift_settings()
    assert settings.pushgateway_url == "http://pushgateway:9091"
    assert settings.alert_webhook_url is not None
    assert settings.alert_webhook_url.get_secret_value() == "https://hooks.example/T0/B0/x"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("DRIFT_MIN_ROWS", "0", "DRIFT_MIN_ROWS"),
        ("DRIFT_DRIFT_SHARE", "1.5", "DRIFT_DRIFT_SHARE"),
        ("DRIFT_PUSHGATEWAY_URL", "pushgateway:9091", "DRIFT_PUSHGATEWAY_URL"),
        ("DRIFT_ALERT_WEBHOOK_URL", "ftp://hooks", "DRIFT_ALERT_WEBHOOK_URL"),
        ("DRIFT_NUM_METHOD", "no_such_test", "DRIFT_NUM_METHOD"),
        ("DRIFT_CAT_METHOD", "wasserstein", "DRIFT_CAT_METHOD"),
    ],
)
def test_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigurationError, match=named):
        load_drift_settings()


def test_webhook_url_is_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFT_ALERT_WEBHOOK_URL", "ftp://secret-token-xyz")
    with pytest.raises(ConfigurationError) as raised:
        load_drift_settings()
    assert "secret-token-xyz" not in str(raised.value)


def test_inconsistent_thresholds_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="DRIFT_SHARE_CRITICAL"):
        load_drift_settings(drift_share=0.8, drift_share_critical=0.5)


# --- windows -------------------------------------------------------------------------------------------------


def test_durations_and_reference_windows() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("7d") == timedelta(days=7)
    for bad in ("7", "x d", "-1h", "0h", "5y"):
        with pytest.raises(ConfigurationError):
            parse_duration(bad)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    window = parse_reference_window("2d", start)
    assert (window.start, window.end) == (start - timedelta(days=2), start)
    explicit = parse_reference_window("2026-11-01T00:00/2026-11-08T00:00+00:00", start)
    assert explicit.start == datetime(2026, 11, 1, tzinfo=UTC) and explicit.end == datetime(2026, 11, 8, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="not before"):
        parse_reference_window("2026-11-08/2026-11-01", start)
    with pytest.raises(ConfigurationError, match="ISO 8601"):
        parse_reference_window("yesterday/today", start)


def test_version_uri_prefers_the_recorded_storage_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_URI", "s3://bucket/base")
    core = load_settings()
    assert version_uri(TARGET, core) == "s3://bucket/base/models/sentiment/3"
    recorded = Target("ml/sentiment", "sentiment", "3", "s3://other/models/sentiment/3")
    assert version_uri(recorded, core) == "s3://other/models/sentiment/3"


def test_card_labels_from_list_or_id2label() -> None:
    assert card_labels({"labels": ["Negative", "Positive"]}) == ["negative", "positive"]
    assert card_labels({"labels": {"1": "positive", "0": "negative"}}) == ["negative", "positive"]
    assert card_labels({}) is None


# --- verdicts ------------------------------------------------------------------------------------------------


def _result(drifted: list[str], share: float, dataset: bool) -> DriftResult:
    columns = [
        ColumnDrift(name, "numerical", "Wasserstein distance (normed)", 0.3 if name in drifted else 0.01, 0.1,
                    name in drifted)
        for name in ("text_length_chars", "text_length_words", "confidence", "predicted_label")
    ]  # fmt: skip
    return DriftResult(columns, len(drifted), share, dataset, "<html></html>", current_rows=500, reference_rows=900)


def test_drift_condition_severity_follows_the_share() -> None:
    settings = DriftSettings()
    clear = drift_condition(_result([], 0.0, False), settings, "x")
    assert clear.active is False
    one = drift_condition(_result(["confidence"], 0.25, False), settings, "x")
    assert one.active is False and one.details["drifted_columns"] == ["confidence"]
    half = drift_condition(_result(["confidence", "predicted_label"], 0.5, True), settings, "x")
    assert half.active is True and half.severity == "warning"
    assert "confidence, predicted_label" in half.message
    everything = drift_condition(
        _result(["text_length_chars", "text_length_words", "confidence", "predicted_label"], 1.0, True), settings, "x"
    )
    assert everything.severity == "critical"
    assert {c["column"] for c in everything.details["columns"] if c["drift_detected"]} == set(
        everything.details["drifted_columns"]
    )


def _pairs(correct: int, wrong: int) -> pd.DataFrame:
    predicted = ["positive"] * correct + ["positive"] * wrong
    actual = ["positive"] * correct + ["negative"] * wrong
    return pd.DataFrame({"predicted": predicted, "actual": actual})


def test_quality_against_the_model_card() -> None:
    settings = DriftSettings(min_feedback_rows=10)
    card = {"accuracy": 0.9, "f1": 0.9}
    fine, quality = quality_condition(_pairs(95, 5), card, settings, "x")
    assert fine.active is False and quality is not None and quality.accuracy == pytest.approx(0.95)
    dropped, quality = quality_condition(_pairs(60, 40), card, settings, "x")
    assert dropped.active is True and dropped.severity == "critical"
    assert dropped.details["accuracy"]["drop"] == pytest.approx(0.3)
    assert "accuracy 0.600 vs 0.900" in dropped.message
    few, _ = quality_condition(_pairs(5, 0), card, settings, "x")
    assert few.active is None and "fewer than 10" in few.reason
    unknown, _ = quality_condition(_pairs(60, 40), {}, settings, "x")
    assert unknown.active is None


def test_binary_f1_uses_the_positive_label_and_falls_back_to_macro() -> None:
    pairs = pd.DataFrame(
        {"predicted": ["positive", "negative", "negative"], "actual": ["positive", "positive", "negative"]}
    )
    assert quality_of(pairs, "positive").f1 == pytest.approx(2 / 3)
    three = pd.DataFrame({"predicted": ["a", "b", "c"], "actual": ["a", "b", "b"]})
    assert quality_of(three, "positive").f1_average == "macro"


def test_volume_drop_surge_and_unknown() -> None:
    settings = DriftSettings()
    assert volume_condition(100, [100, 90, 110, 0, 95, 105], settings, "x").active is False
    drop = volume_condition(10, [100, 90, 110, 95, 105, 100], settings, "x")
    assert drop.active is True and drop.details["direction"] == "drop" and drop.severity == "warning"
    assert volume_condition(0, [100, 90, 110], settings, "x").severity == "critical"
    surge = volume_condition(1000, [100, 90, 110], settings, "x")
    assert surge.active is True and surge.details["direction"] == "surge"
    unknown = volume_condition(0, [0, 0, 100], settings, "x")
    assert unknown.active is None and "fewer than 3" in unknown.reason


# --- outputs -------------------------------------------------------------------------------------------------


def test_slack_payload_and_report_link() -> None:
    alert = MonitoringAlert(
        id=7, deployment_id="ml/sentiment", model_version="3", alert_type="drift", severity="critical",
        message="Data drift", run_id="abc",
    )  # fmt: skip
    payload = slack_payload(alert, "https://reports.example/r.html")
    assert payload["text"] == "[CRITICAL] Data drift"
    fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
    assert fields["Deployment"] == "ml/sentiment" and fields["Report"] == "https://reports.example/r.html"
    settings = DriftSettings(report_base_url="https://minio.example/browser/b")
    assert (
        report_link("s3://b/reports/ml/x.html", settings, "s3://b")
        == "https://minio.example/browser/b/reports/ml/x.html"
    )
    assert report_link("s3://b/reports/ml/x.html", DriftSettings(), "s3://b") == "s3://b/reports/ml/x.html"
    assert report_link(None, settings, "s3://b") is None


def test_prometheus_registry_holds_share_scores_and_last_success() -> None:
    result = _result(["confidence", "predicted_label"], 0.5, True)
    registry = build_registry(TARGET, result, None, 500, 1_700_000_000.0)
    text = generate_latest(registry).decode()
    assert 'mlpipeline_drift_share{deployment="ml/sentiment",model_version="3"} 0.5' in text
    assert (
        'mlpipeline_drift_column_drifted{column="confidence",deployment="ml/sentiment",model_version="3"} 1.0' in text
    )
    assert "mlpipeline_drift_column_score{" in text
    assert "mlpipeline_drift_last_success_timestamp_seconds" in text and "1.7e+09" in text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_pushgateway_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    settings = DriftSettings(pushgateway_url=f"http://127.0.0.1:{_closed_port()}")
    assert push(settings, TARGET, CollectorRegistry()) is False
    assert "unreachable" in caplog.text
    assert push(DriftSettings(), TARGET, CollectorRegistry()) is False  # not configured: nothing to do


def test_webhook_retries_server_errors_but_not_refusals() -> None:
    calls: list[int] = []
    statuses = iter([503, 503, 400])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            calls.append(status := next(statuses))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        notifier = WebhookNotifier(DriftSettings(alert_webhook_url=url, webhook_attempts=2, webhook_backoff_s=0))
        with pytest.raises(WebhookError, match="503") as retried:
            notifier.send({"text": "x"})
        assert retried.value.retryable and calls == [503, 503]
        with pytest.raises(WebhookError, match="refused") as refused:
            notifier.send({"text": "x"})
        assert not refused.value.retryable and calls == [503, 503, 400]  # a 400 is not retried
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(WebhookError, match="unreachable"):
        WebhookNotifier(
            DriftSettings(alert_webhook_url=f"http://127.0.0.1:{_closed_port()}/", webhook_attempts=1)
        ).send({"text": "x"})
