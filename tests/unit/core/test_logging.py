import json
import logging

import pytest

from mlcore.logging import JsonFormatter, configure_logging

pytestmark = pytest.mark.unit


def test_json_lines_keep_extra_fields():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.request_id = "r-1"
    payload = json.loads(JsonFormatter().format(record))
    assert payload["message"] == "hello world" and payload["request_id"] == "r-1" and payload["level"] == "info"


def test_configure_is_idempotent(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "json")
    configure_logging()
    configure_logging()
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_mlpipeline", False)]
    assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
    configure_logging(json_format=False)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_mlpipeline", False)]
    assert not isinstance(ours[0].formatter, JsonFormatter)
