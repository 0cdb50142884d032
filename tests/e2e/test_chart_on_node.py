"""The chart on the single-node cluster of hack/cluster-up.sh, with the operator, predictor and drift job from their
built images and KServe's real controller (hack/kserve-up.sh, Standard mode), in the order a user meets them:

1. `helm install --wait` succeeds with the operator pod Running and Ready, and the operator, in its pod, reaches
   Postgres and migrates the schema;
2. a ModelDeployment of a version published to S3 becomes an InferenceService that KServe's CRD schema (v0.20.0)
   admits with the operator's fields intact;
3. KServe turns it into a Deployment and Service; the predictor pod fetches the version itself (manifest-checked),
   becomes Ready, answers the v2 protocol through the Service and logs the prediction to Postgres with the
   deployment's identity; the ModelDeployment reports the version as serving;
4. a second version rolls out as a canary (a second InferenceService KServe serves beside the first), the operator
   analyses both arms from the prediction logs the two pods wrote, steps through the weights and promotes it;
5. a third version whose published files do not match its manifest is refused with a clear condition, and the
   promoted version keeps serving;
6. a fourth version that fails its canary gates (a latency limit no request meets) is rolled back: its
   InferenceService goes, the promoted version serves all traffic;
7. the drift CronJob, started by hand (`kubectl create job --from=cronjob/...`), analyses the logged window against
   the version's reference sample and writes its run.

Postgres and MinIO are the tests' own throwaway servers (loopback), reached by the pods through forwarders on the
node IP. The tests share one release and run in file order. Needs the cluster, KServe's controller,
`ml-pipeline/{operator,predictor,drift-cronjob}:0.1.0` loaded into it and socat; skips without them (fails under
MLP_E2E_REQUIRED=1, as in .ci/run).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.cluster_support import (
    BUCKET,
    DATABASE,
    Kubectl,
    cluster_or_skip,
    condition,
    infer_request,
    infer_url,
    post_when_routed,
    publish,
    ready_inference_service,
    release_namespace,
    s3_environment,
    site_values,
)
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.s3 import S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "mlp-chart"
RELEASE = "ml-pipeline"
SECRET = "mlp-e2e-credentials"
TAG = "0.1.0"
MODEL_URI = f"s3://{BUCKET}/models/sentiment/1"
TEXTS = ("A fine film.", "Dull and far too long.", "I loved every minute.", "A waste of an evening.")


@pytest.fixture(scope="module")
def kubectl() -> Kubectl:
    return cluster_or_skip(NAMESPACE, node_services=True)


@pytest.fixture(scope="module")
def release(
    kubectl: Kubectl,
    kserve_controller: None,
    database: tuple[str, int],
    object_store: str,
    postgres_server: PostgresServer,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    # KServe's CRDs are hack/kserve-up.sh's (kserve_controller): the controller runs against them.
    with release_namespace(kubectl, lambda: kubectl.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", timeout=180)):
        values = site_values(kubectl, SECRET, database, object_store, postgres_server, s3_server)
        values |= {
            "image": {"pullPolicy": "Never", "tag": TAG},
            "operator": {"resources": {"limits": {"memory": "1Gi"}}},
            # The drift job, started by hand below: any few rows make a window, and it may end at "now".
            "drift": {
                "env": {"DRIFT_MIN_ROWS": "8", "DRIFT_WINDOW_DELAY_S": "0"},
                "resources": {"requests": {"cpu": "100m"}},
            },
        }
        values_file = tmp_path_factory.mktemp("chart") / "values.yaml"
        values_file.write_text(json.dumps(values))  # JSON is YAML
        try:
            kubectl.helm(
                "install", RELEASE, str(REPO / "charts/ml-pipeline"), "-n", NAMESPACE, "--wait", "--timeout", "6m",
                "-f", str(values_file), timeout=420,
            )  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{kubectl.diagnostics()}") from exc
        yield


def test_operator_pod_is_ready_and_migrated_the_database(
    kubectl: Kubectl, release: None, postgres_server: PostgresServer
) -> None:
    selector = "app.kubernetes.io/component=operator"
    pods = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json"))
    assert len(pods["items"]) == 1, kubectl.diagnostics()
    pod = pods["items"][0]
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert pod["status"]["phase"] == "Running" and ready["Ready"] == "True", kubectl.diagnostics()
    assert pod["spec"]["containers"][0]["image"].endswith(f"ml-pipeline/operator:{TAG}")
    # The migrations ran from inside the pod, over the pod network to the host's Postgres.
    with psycopg.connect(postgres_server.libpq_url(DATABASE)) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"alembic_version", "prediction_logs"} <= tables, tables


def test_modeldeployment_becomes_an_inferenceservice_kserve_admits(kubectl: Kubectl, release: None) -> None:
    body = {
        "apiVersion": "mlpipeline.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "sentiment", "namespace": NAMESPACE},
        "spec": {
            "model": {"name": "sentiment", "version": "1", "storageUri": MODEL_URI},
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(body))
    deadline = time.monotonic() + 120
    isvc: dict[str, object] | None = None
    while time.monotonic() < deadline and isvc is None:
        out = kubectl("get", "inferenceservices.serving.kserve.io", "-n", NAMESPACE, "-o", "json")
        isvc = next(iter(json.loads(out)["items"]), None)
        if isvc is None:
            time.sleep(2)
    assert isvc is not None, f"the operator created no InferenceService\n{kubectl.diagnostics()}"
    predictor = isvc["spec"]["predictor"]  # type: ignore[index]
    # Stored under KServe's structural schema: an unknown field would have been pruned.
    assert predictor["containers"][0]["image"] == f"ml-pipeline/predictor:{TAG}", predictor
    assert predictor["labels"]["mlpipeline.io/role"] == "stable", predictor


def _phase(kubectl: Kubectl, wanted: str, stable: str) -> dict[str, Any] | None:
    body = kubectl.get("modeldeployments", "sentiment")
    status = (body or {}).get("status") or {}
    return body if status.get("phase") == wanted and (status.get("stable") or {}).get("version") == stable else None


def _logged(postgres_server: PostgresServer, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres_server.libpq_url(DATABASE)) as conn:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def test_kserve_reconciles_it_into_a_predictor_that_serves_and_logs(
    kubectl: Kubectl, release: None, postgres_server: PostgresServer
) -> None:
    # Runs after the test above created the ModelDeployment (pytest keeps file order).
    deployment = kubectl.wait(
        "KServe's Deployment for the InferenceService", lambda: kubectl.get("deployment", "sentiment-predictor")
    )
    owners = {(o["kind"], o["name"]) for o in deployment["metadata"].get("ownerReferences", [])}
    assert ("InferenceService", "sentiment") in owners, deployment["metadata"]
    kubectl.wait(
        "the predictor Deployment available",
        lambda: True if condition(kubectl.get("deployment", "sentiment-predictor"), "Available") == "True" else None,
    )
    isvc = kubectl.wait(
        "KServe reporting the InferenceService Ready", lambda: ready_inference_service(kubectl, "sentiment"), 120
    )
    assert isvc["status"].get("components", {}).get("predictor") is not None, isvc["status"]

    # The v2 protocol through KServe's Service.
    url = infer_url(kubectl, "sentiment")
    reply = kubectl.wait(
        "the Service routing to the predictor", lambda: post_when_routed(url, infer_request("e2e-1", TEXTS[0])), 60, 1
    )
    assert reply["model_name"] == "sentiment" and reply["id"] == "e2e-1", reply
    outputs = {o["name"]: o for o in reply["outputs"]}
    assert outputs["label"]["data"][0] in ("negative", "positive"), reply

    # Logged off the request path, with the identity the operator gave the pod.
    sql = "SELECT deployment_id, role, model_version FROM prediction_logs WHERE request_id = %s"
    rows = kubectl.wait("the prediction's log row", lambda: _logged(postgres_server, sql, "e2e-1") or None, 60)
    assert [tuple(map(str, row)) for row in rows] == [(f"{NAMESPACE}/sentiment", "stable", "1")]

    md = kubectl.wait("the ModelDeployment reporting version 1 serving", lambda: _phase(kubectl, "Succeeded", "1"), 120)
    assert condition(md, "Ready") == "True", md["status"]


def _client_split(
    kubectl: Kubectl, prefix: str, *, canary_may_go: bool = False
) -> tuple[dict[str, str], Callable[[], None]]:
    """The stable and canary infer URLs, and one round of traffic to both. No Gateway on this node, so the client
    splits: each round sends the same texts to both Services, and the operator reads both arms from the rows the
    two pods log. With `canary_may_go`, a request that fails because the rollout just removed the canary's Service
    is skipped."""
    urls = {"stable": infer_url(kubectl, "sentiment"), "canary": infer_url(kubectl, "sentiment-canary")}
    numbers = itertools.count(1)

    def send_round() -> None:
        for role, url in urls.items():
            for text in TEXTS:
                body = infer_request(f"{prefix}-{role}-{next(numbers)}", text)
                if role == "canary" and canary_may_go:
                    with contextlib.suppress(OSError):
                        post_when_routed(url, body)
                else:
                    post_when_routed(url, body)

    return urls, send_round


def test_a_second_version_rolls_out_as_a_canary_and_is_promoted(
    kubectl: Kubectl, release: None, postgres_server: PostgresServer, s3_server: S3Server
) -> None:
    uri = publish(s3_server, "2")
    # Small gates for a few dozen requests: absolute error and latency limits, no latency ratio or label test
    # (both would stay inconclusive on this few); every version has the same weights, so labels cannot shift.
    rollout = {
        "strategy": "Canary",
        "steps": [50, 100],
        "interval": "10s",
        "maxFailedChecks": 3,
        "analysis": {
            "window": "10m",
            "minRequests": 12,
            "maxErrorRate": 0.05,
            "maxLatencyP95Ms": 5000,
            "maxLatencyRatio": 100,
            "labelTest": "Off",
        },
    }
    patch = {"spec": {"model": {"name": "sentiment", "version": "2", "storageUri": uri}, "rollout": rollout}}
    kubectl("patch", "modeldeployments", "sentiment", "-n", NAMESPACE, "--type", "merge", "-p", json.dumps(patch))

    canary = kubectl.wait(
        "KServe reporting the canary Ready", lambda: ready_inference_service(kubectl, "sentiment-canary")
    )
    assert canary["metadata"]["labels"]["mlpipeline.io/role"] == "canary", canary["metadata"]
    urls, send_round = _client_split(kubectl, "e2e")

    def promoted() -> dict[str, Any] | None:
        body = _phase(kubectl, "Succeeded", "2")
        if body is not None or kubectl.get("inferenceservices.serving.kserve.io", "sentiment-canary") is None:
            return body  # promoted, or promoting: the canary's InferenceService goes first
        send_round()
        return None

    kubectl.wait("the operator promoting the canary", lambda: promoted() or _phase(kubectl, "Promoting", "2"), 420, 2)
    md = kubectl.wait("the ModelDeployment reporting version 2 serving", lambda: _phase(kubectl, "Succeeded", "2"), 300)
    status = md["status"]
    assert condition(md, "Ready") == "True" and not status.get("canary"), status
    history = [(h.get("version"), h.get("outcome")) for h in status.get("history", [])]
    assert ("2", "promoted") in history, status
    arms = _logged(
        postgres_server,
        "SELECT role, model_version, count(*) FROM prediction_logs WHERE deployment_id = %s AND model_version = '2'"
        " GROUP BY role, model_version",
        f"{NAMESPACE}/sentiment",
    )
    assert ("canary", "2") in {(str(r), str(v)) for r, v, _ in arms}, arms
    # The candidate's InferenceService is gone and the stable one now serves version 2, logged as stable.
    kubectl.wait(
        "the canary InferenceService removed",
        lambda: True if kubectl.get("inferenceservices.serving.kserve.io", "sentiment-canary") is None else None,
        120,
    )
    stable = kubectl.wait(
        "the stable InferenceService Ready on version 2", lambda: ready_inference_service(kubectl, "sentiment"), 300
    )
    assert stable["metadata"]["annotations"]["mlpipeline.io/model-version"] == "2", stable["metadata"]
    kubectl.wait(
        "the promoted predictor answering",
        lambda: post_when_routed(urls["stable"], infer_request("e2e-2", TEXTS[1])),
        60,
        1,
    )
    sql = "SELECT role, model_version FROM prediction_logs WHERE request_id = %s"
    rows = kubectl.wait("the promoted version's log row", lambda: _logged(postgres_server, sql, "e2e-2") or None, 60)
    assert [tuple(map(str, row)) for row in rows] == [("stable", "2")]


def test_a_version_that_does_not_match_its_manifest_is_refused(
    kubectl: Kubectl, release: None, postgres_server: PostgresServer, s3_server: S3Server
) -> None:
    from mlcore.storage import join_key, open_storage

    uri = publish(s3_server, "3")
    with s3_environment(s3_server):
        # A file overwritten after publishing (a partial re-upload): the manifest no longer describes it.
        open_storage(f"s3://{BUCKET}").put_bytes(join_key("models", "sentiment", "3", "config.json"), b"{}")
    patch = {"spec": {"model": {"name": "sentiment", "version": "3", "storageUri": uri}}}
    kubectl("patch", "modeldeployments", "sentiment", "-n", NAMESPACE, "--type", "merge", "-p", json.dumps(patch))

    md = kubectl.wait("the operator refusing version 3", lambda: _phase(kubectl, "Failed", "2"), 120, 2)
    message = md["status"].get("message", "")
    assert "version 3 refused" in message and "config.json" in message and "manifest" in message, md["status"]
    # Nothing was created for it, and version 2 keeps serving.
    assert kubectl.get("inferenceservices.serving.kserve.io", "sentiment-canary") is None, kubectl.diagnostics()
    stable = kubectl.get("inferenceservices.serving.kserve.io", "sentiment")
    assert stable is not None and stable["metadata"]["annotations"]["mlpipeline.io/model-version"] == "2", stable
    events = kubectl("get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.kind=ModelDeployment")
    assert "refused" in events, events
    url = infer_url(kubectl, "sentiment")
    reply = kubectl.wait("version 2 answering", lambda: post_when_routed(url, infer_request("e2e-3", TEXTS[2])), 60, 1)
    assert reply["id"] == "e2e-3", reply


def test_a_canary_that_fails_its_gates_is_rolled_back(
    kubectl: Kubectl, release: None, postgres_server: PostgresServer, s3_server: S3Server
) -> None:
    uri = publish(s3_server, "4")
    # A healthy version held to a latency limit no real request meets (0.01 ms): the canary's p95 gate fails on
    # the first check with enough traffic, and one failed check rolls it back.
    rollout = {
        "strategy": "Canary",
        "steps": [50, 100],
        "interval": "10s",
        "maxFailedChecks": 1,
        "analysis": {"window": "10m", "minRequests": 8, "maxLatencyP95Ms": 0.01, "labelTest": "Off"},
    }
    patch = {"spec": {"model": {"name": "sentiment", "version": "4", "storageUri": uri}, "rollout": rollout}}
    kubectl("patch", "modeldeployments", "sentiment", "-n", NAMESPACE, "--type", "merge", "-p", json.dumps(patch))
    kubectl.wait("KServe reporting the canary Ready", lambda: ready_inference_service(kubectl, "sentiment-canary"))
    urls, send_round = _client_split(kubectl, "e2e-rb", canary_may_go=True)

    def rolled_back() -> dict[str, Any] | None:
        body = _phase(kubectl, "RolledBack", "2")
        if body is None:
            send_round()
        return body

    md = kubectl.wait("the operator rolling the canary back", rolled_back, 300, 2)
    status = md["status"]
    assert "version 4 rolled back" in status["message"] and "p95 latency" in status["message"], status
    assert ("4", "rolled_back") in [(h.get("version"), h.get("outcome")) for h in status.get("history", [])]
    kubectl.wait(
        "the canary InferenceService removed",
        lambda: True if kubectl.get("inferenceservices.serving.kserve.io", "sentiment-canary") is None else None,
        120,
    )
    stable = kubectl.get("inferenceservices.serving.kserve.io", "sentiment")
    assert stable is not None and stable["metadata"]["annotations"]["mlpipeline.io/model-version"] == "2", stable
    reply = kubectl.wait(
        "version 2 answering", lambda: post_when_routed(urls["stable"], infer_request("e2e-4", TEXTS[3])), 60, 1
    )
    assert reply["id"] == "e2e-4", reply


def test_the_drift_cronjob_run_by_hand_analyses_the_logged_window(
    kubectl: Kubectl, release: None, postgres_server: PostgresServer
) -> None:
    # Enough rows of the serving version in the window for a run (the chart's DRIFT_MIN_ROWS above).
    url = infer_url(kubectl, "sentiment")
    for i in range(12):
        kubectl.wait(
            "version 2 answering", lambda i=i: post_when_routed(url, infer_request(f"e2e-d{i}", TEXTS[i % 4])), 60, 1
        )
    cronjobs = json.loads(
        kubectl("get", "cronjobs", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=drift", "-o", "json")
    )["items"]
    assert len(cronjobs) == 1, cronjobs
    cronjob = cronjobs[0]["metadata"]["name"]
    kubectl("create", "job", "drift-e2e", f"--from=cronjob/{cronjob}", "-n", NAMESPACE)

    def finished() -> dict[str, Any] | None:
        job = kubectl.get("job", "drift-e2e")
        done = {c["type"] for c in ((job or {}).get("status") or {}).get("conditions", []) if c["status"] == "True"}
        return job if done & {"Complete", "Failed"} else None

    job = kubectl.wait("the drift Job finishing", finished, 420)
    assert condition(job, "Complete") == "True", kubectl.diagnostics()
    runs = _logged(
        postgres_server,
        "SELECT model_version, status, reason, rows, drift_share FROM drift_runs WHERE deployment_id = %s",
        f"{NAMESPACE}/sentiment",
    )
    by_version = {str(run[0]): run for run in runs}
    assert "2" in by_version, runs
    _, status, _, rows, share = by_version["2"]
    assert status == "success" and rows >= 8 and share is not None, by_version["2"]
