"""Shared pytest setup: offline hubs and the real-service fixtures of tests/fixtures/services.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `tests.fixtures...` must import the same way whether or not tests/ becomes a package later.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

# No hub downloads at test time: every model and data set a test uses is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Idle OpenMP workers must sleep, not spin: on 2 shared cores spinning threads slow every other process (and test).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from mlcore.config import get_settings  # noqa: E402
from tests.fixtures.services import (  # noqa: E402  (needs the path set above)
    kube_apiserver,
    postgres_server,
    postgres_url,
    s3_bucket,
    s3_server,
)

__all__ = ["kube_apiserver", "postgres_server", "postgres_url", "s3_bucket", "s3_server"]


@pytest.fixture(autouse=True)
def _settings_from_this_tests_environment():
    """get_settings() is cached per process: a test that sets a variable (monkeypatch.setenv) must read it, and
    must not leave its settings to the next test. Seen: MLP_PRECISION=fp32 ignored after an earlier test cached
    `auto`, which is bf16 autocast on a CPU with AVX512-BF16, so an exact fp32 comparison failed on one machine."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
