"""Fixtures of the tests that run the product on the single-node cluster: the tests' own Postgres and MinIO made
reachable from pods (socat forwarders on the node IP), tiny model versions published to that MinIO, and KServe's
controller checked to be running. Each test module gets its own database; the bucket is shared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster_support import (
    BUCKET,
    DATABASE,
    KUBECONFIG,
    NODE_IP,
    Kubectl,
    node_forwarder,
    publish,
    unavailable,
)
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.s3 import S3Server


@pytest.fixture(scope="module")
def kserve_controller(kubectl: Kubectl) -> None:
    """KServe's manager from hack/kserve-up.sh: without it an InferenceService is stored and never reconciled."""
    pid_file = KUBECONFIG.parent / "pids" / "kserve-manager"
    try:
        alive = Path("/proc", pid_file.read_text().strip()).is_dir()
    except OSError:
        alive = False
    if not alive:
        unavailable(f"KServe's controller is not running ({pid_file}): bash hack/kserve-up.sh")


@pytest.fixture(scope="module")
def database(postgres_server: PostgresServer) -> Iterator[tuple[str, int]]:
    postgres_server.create_database(DATABASE)
    try:
        with node_forwarder(postgres_server.port) as port:
            yield NODE_IP, port
    finally:
        postgres_server.drop_database(DATABASE)


@pytest.fixture(scope="session")
def object_store(s3_server: S3Server) -> Iterator[str]:
    """The test MinIO with version 1 of `sentiment` published, once for every module (the bucket outlives each);
    yields the pods' endpoint URL."""
    s3_server.make_bucket(BUCKET)
    publish(s3_server, "1")
    with node_forwarder(s3_server.port) as port:
        yield f"http://{NODE_IP}:{port}"
