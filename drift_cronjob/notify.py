"""Alert webhook (Slack-compatible JSON) with retries; undelivered alerts stay notified=false for the next run."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from drift_cronjob.settings import DriftSettings
from mlcore.db import MonitoringAlert, session_scope

log = logging.getLogger(__name__)

_COLORS = {"info": "#439FE0", "warning": "#ECB22E", "critical": "#E01E5A"}


class WebhookError(Exception):
    """The webhook refused the message or could not be reached."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def slack_payload(alert: MonitoringAlert, report_link: str | None) -> dict[str, Any]:
    """Incoming-webhook JSON: `text` for any Slack-compatible receiver, plus an attachment with the fields."""
    fields = [
        {"title": "Deployment", "value": alert.deployment_id, "short": True},
        {"title": "Model version", "value": alert.model_version or "-", "short": True},
        {"title": "Type", "value": alert.alert_type, "short": True},
        {"title": "Severity", "value": alert.severity, "short": True},
    ]
    if report_link:
        fields.append({"title": "Report", "value": report_link, "short": False})
    return {
        "text": f"[{alert.severity.upper()}] {alert.message}",
        "attachments": [
            {
                "color": _COLORS.get(alert.severity, "#cccccc"),
                "fields": fields,
                "footer": f"ml-pipeline drift job · alert {alert.id} · run {alert.run_id}",
            }
        ],
    }


class WebhookNotifier:
    def __init__(self, settings: DriftSettings) -> None:
        if settings.alert_webhook_url is None:
            raise ValueError("no webhook URL configured")
        self.url = settings.alert_webhook_url.get_secret_value()
        self.settings = settings

    def _post_once(self, client: httpx.Client, payload: dict[str, Any]) -> None:
        try:
            response = client.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            raise WebhookError(f"webhook unreachable: {type(exc).__name__}: {exc}", retryable=True) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise WebhookError(f"webhook answered HTTP {response.status_code}", retryable=True)
        if response.status_code >= 400:
            raise WebhookError(f"webhook refused the message: HTTP {response.status_code}", retryable=False)

    def send(self, payload: dict[str, Any]) -> None:
        """POST with exponential back-off on transport errors, 429 and 5xx; WebhookError after the last try."""
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, WebhookError) and e.retryable),
            stop=stop_after_attempt(self.settings.webhook_attempts),
            wait=wait_exponential(multiplier=self.settings.webhook_backoff_s, max=30),
            reraise=True,
        )
        with httpx.Client(timeout=self.settings.webhook_timeout_s) as client:
            retrying(self._post_once, client, payload)


def report_link(report_uri: str | None, settings: DriftSettings, storage_root: str) -> str | None:
    """The report's storage URI, or a browsable URL when DRIFT_REPORT_BASE_URL maps the storage root."""
    if not report_uri:
        return None
    if settings.report_base_url and report_uri.startswith(storage_root.rstrip("/") + "/"):
        return settings.report_base_url.rstrip("/") + "/" + report_uri[len(storage_root.rstrip("/")) + 1 :]
    return report_uri


def deliver_pending(engine: Engine, settings: DriftSettings, storage_root: str) -> tuple[int, int]:
    """Send every open alert not yet notified (this run's and earlier failures); returns (sent, failed)."""
    if settings.alert_webhook_url is None:
        return 0, 0
    notifier = WebhookNotifier(settings)
    with session_scope(engine) as session:
        pending = list(
            session.scalars(
                select(MonitoringAlert)
                .where(MonitoringAlert.notified.is_(False), MonitoringAlert.resolved.is_(False))
                .order_by(MonitoringAlert.id)
            )
        )
    sent = failed = 0
    for alert in pending:
        try:
            notifier.send(slack_payload(alert, report_link(alert.report_uri, settings, storage_root)))
        except WebhookError as exc:
            failed += 1
            log.error("alert %d not delivered (kept for the next run): %s", alert.id, exc)
            continue
        with session_scope(engine) as session:
            stored = session.get(MonitoringAlert, alert.id)
            if stored is not None:
                stored.notified = True
        sent += 1
    return sent, failed
