"""Fixtures for the operator against the real kube-apiserver and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from mlcore.db import create_db_engine, upgrade_to_head
from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import Cluster, OperatorThread, install_crds, new_namespace
from tests.fixtures.services import KubeApiServer


@pytest.fixture(scope="session")
def k8s_api(kube_apiserver: KubeApiServer) -> Iterator[object]:
    """An admin ApiClient with the ModelDeployment, test InferenceService/HTTPRoute and peering CRDs installed."""
    with kube_apiserver.api_client() as api:
        install_crds(api)
        yield api


@pytest.fixture
def cluster(k8s_api: object) -> Cluster:
    return Cluster(k8s_api, new_namespace(k8s_api))  # type: ignore[arg-type]


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_db_engine(postgres_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def operator_config(kube_apiserver: KubeApiServer, cluster: Cluster) -> OperatorConfig:
    # A short tick so rollouts with interval 1s move quickly; no ports: tests never bind any.
    return OperatorConfig(
        namespaces=[cluster.namespace],
        kubeconfig=str(kube_apiserver.kubeconfig),
        tick_seconds=0.3,
        metrics_port=0,
        liveness_endpoint=None,
        standalone=True,
        predictor_image="registry.example/predictor:test",
        database_secret="mlp-db",
        max_workers=8,
        verify_models=False,  # the tests' storage URIs name no published versions (test_operator_rollout checks it)
    )


@pytest.fixture
def operator(operator_config: OperatorConfig, engine: Engine) -> Iterator[OperatorThread]:
    running = OperatorThread(operator_config, engine).start()
    yield running
    running.stop()
