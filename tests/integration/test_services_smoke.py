"""The real test services start, answer and stop as the other tests expect (see tests/fixtures/services.py)."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import boto3
import psycopg
import pytest
import sqlalchemy as sa
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.fixtures.services import KubeApiServer, PostgresServer, S3Bucket

# --- PostgreSQL -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_postgres_answers_and_keeps_data_across_restart(postgres_server: PostgresServer, postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            conn.execute(sa.text("CREATE TABLE kept (id int PRIMARY KEY, note text)"))
            conn.execute(sa.text("INSERT INTO kept VALUES (1, 'before outage')"))
        engine.dispose()

        port = postgres_server.port
        postgres_server.stop()
        assert not postgres_server.running
        with pytest.raises(sa.exc.OperationalError):
            engine.connect().close()

        postgres_server.start()
        assert postgres_server.port == port
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT note FROM kept WHERE id = 1")).scalar_one() == "before outage"
    finally:
        engine.dispose()


@pytest.mark.integration
def test_postgres_databases_are_fresh_and_password_is_checked(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalar_one()
        assert tables == 0
    finally:
        engine.dispose()
    wrong = (
        f"postgresql://{postgres_server.user}:not-the-password@{postgres_server.host}:{postgres_server.port}/postgres"
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5).close()


# --- S3 ---------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_s3_put_get_list_with_environment_credentials(s3_bucket: S3Bucket) -> None:
    # A client built only from the environment the fixture set, as the components build theirs.
    s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"])
    s3.put_object(Bucket=s3_bucket.name, Key="models/m/1/weights.bin", Body=b"\x00\x01weights")
    s3.put_object(Bucket=s3_bucket.name, Key="models/m/1/MANIFEST", Body=b"{}")
    s3.put_object(Bucket=s3_bucket.name, Key="reports/other.html", Body=b"<html/>")

    body = s3.get_object(Bucket=s3_bucket.name, Key="models/m/1/weights.bin")["Body"].read()
    assert body == b"\x00\x01weights"
    listed = s3.list_objects_v2(Bucket=s3_bucket.name, Prefix="models/m/1/")
    assert sorted(o["Key"] for o in listed["Contents"]) == ["models/m/1/MANIFEST", "models/m/1/weights.bin"]
    assert s3_bucket.uri("models/m/1") == f"s3://{s3_bucket.name}/models/m/1"


@pytest.mark.integration
def test_s3_buckets_are_fresh_per_test(s3_bucket: S3Bucket) -> None:
    assert s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name)["KeyCount"] == 0


# --- kube-apiserver ---------------------------------------------------------------------------------------

GROUP = "smoke.mlpipeline.test"
PLURAL = "widgets"


def _widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                    "required": ["size"],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def _wait_established(ext: client.ApiextensionsV1Api, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        conditions = (crd.status.conditions if crd.status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise AssertionError(f"CRD {name} not Established within {timeout}s")


@pytest.mark.k8s
def test_kube_apiserver_reports_pinned_version(kube_apiserver: KubeApiServer) -> None:
    version = json.loads(kube_apiserver.get("/version"))
    assert version["gitVersion"] == "v1.37.2"
    with kube_apiserver.api_client() as api:
        assert client.VersionApi(api).get_code().git_version == "v1.37.2"


@pytest.mark.k8s
def test_custom_object_round_trip_and_watch_event(kube_apiserver: KubeApiServer) -> None:
    with kube_apiserver.api_client() as api:
        ext = client.ApiextensionsV1Api(api)
        crd_name = f"{PLURAL}.{GROUP}"
        try:
            ext.create_custom_resource_definition(_widget_crd())
        except ApiException as exc:
            if exc.status != 409:  # another test in this session made it already
                raise
        _wait_established(ext, crd_name)

        objects = client.CustomObjectsApi(api)
        name = f"w-{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"size": 3},
        }
        listed = objects.list_namespaced_custom_object(GROUP, "v1", "default", PLURAL)
        start_rv = listed["metadata"]["resourceVersion"]
        objects.create_namespaced_custom_object(GROUP, "v1", "default", PLURAL, body)

        got = objects.get_namespaced_custom_object(GROUP, "v1", "default", PLURAL, name)
        assert got["spec"] == {"size": 3}

        # The schema is enforced by the real server.
        bad = {**body, "metadata": {"name": f"{name}-bad"}, "spec": {"size": "three"}}
        with pytest.raises(ApiException) as refused:
            objects.create_namespaced_custom_object(GROUP, "v1", "default", PLURAL, bad)
        assert refused.value.status == 422

        # Watching from before the create replays it as an ADDED event.
        events = []
        w = watch.Watch()
        for event in w.stream(
            objects.list_namespaced_custom_object,
            GROUP,
            "v1",
            "default",
            PLURAL,
            resource_version=start_rv,
            timeout_seconds=20,
        ):
            events.append((event["type"], event["object"]["metadata"]["name"]))
            if event["object"]["metadata"]["name"] == name:
                w.stop()
        assert ("ADDED", name) in events


@pytest.mark.k8s
def test_kubectl_and_helm_run_against_the_server(kube_apiserver: KubeApiServer) -> None:
    kubectl_version = json.loads(kube_apiserver.kubectl("version", "-o", "json").stdout)
    assert kubectl_version["serverVersion"]["gitVersion"] == "v1.37.2"
    assert kubectl_version["clientVersion"]["gitVersion"].startswith("v1.37.")

    kube_apiserver.kubectl("create", "namespace", "smoke-kubectl")
    namespaces = kube_apiserver.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/smoke-kubectl" in namespaces

    helm_version = kube_apiserver.helm("version", "--short").stdout.strip()
    assert helm_version.startswith("v4.")
    assert kube_apiserver.helm("list", "--all-namespaces", "--short").stdout.strip() == ""
