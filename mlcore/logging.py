"""Logging set-up: structured JSON in containers, readable text on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from mlcore.config import process_environment

# Libraries whose INFO lines are noise to an operator reading job logs.
_QUIET = ("alembic", "botocore", "boto3", "urllib3", "s3transfer", "httpx", "filelock")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with any `extra=` fields kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _wants_json(stream: Any) -> bool:
    choice = process_environment().log_format.lower()
    if choice in {"json", "text"}:
        return choice == "json"
    # Containers have no TTY: structured logs there, readable ones for a person at a terminal.
    return not is_terminal(stream)


def progress_bars_wanted() -> bool:
    """Carriage-return progress bars only for a person at a terminal (stdout and stderr both TTYs).

    A pod, CI or a redirected file gets periodic log lines instead (see each component's progress reporter).
    MLP_PROGRESS=bars|lines overrides the guess.
    """
    choice = process_environment().mlp_progress.lower()
    if choice in {"bars", "lines"}:
        return choice == "bars"
    return is_terminal(sys.stdout) and is_terminal(sys.stderr)


def configure_logging(level: str | None = None, *, json_format: bool | None = None) -> None:
    """Install one handler on the root logger; safe to call more than once."""
    stream = sys.stderr
    use_json = _wants_json(stream) if json_format is None else json_format
    handler = logging.StreamHandler(stream)
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_mlpipeline", False):
            root.removeHandler(existing)
    handler._mlpipeline = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel((level or process_environment().log_level).upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
