"""A real predictor process serving a tiny model published to the S3 server, logging to a real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.fixtures.models import publish_tiny_model
from tests.fixtures.predictor_server import Served, fresh_database, s3_env, start_predictor
from tests.fixtures.services import PostgresServer, S3Server

# The ONNX Runtime path (what auto picks for the tiny model) and the torch path serve every test.
SERVED_RUNTIMES = ("onnx-int8", "torch")


@pytest.fixture(scope="module", params=SERVED_RUNTIMES)
def served(
    request: pytest.FixtureRequest,
    postgres_server: PostgresServer,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """One predictor per runtime for a test module, fetching its model from s3:// (manifest-checked) like in a
    cluster."""
    if not postgres_server.running:
        postgres_server.start()
    bucket = s3_server.make_bucket(f"t-{uuid.uuid4().hex[:20]}")
    env = s3_env(s3_server)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        model_uri = publish_tiny_model(f"s3://{bucket}", "sentiment", "7")
    db_url = fresh_database(postgres_server)
    tmp = tmp_path_factory.mktemp("predictor")
    process = start_predictor(tmp, ["--storage_uri", model_uri, "--runtime", request.param], db_url, env)
    engine = sa.create_engine(db_url)
    try:
        yield Served(process=process, db_url=db_url, engine=engine, model_uri=model_uri, runtime=request.param)
    finally:
        process.stop()
        engine.dispose()
