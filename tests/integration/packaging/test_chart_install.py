"""The chart and manifests/ against the real kube-apiserver of the test harness (no controllers run there).

- `helm install` (no --wait) succeeds for the default values, the kind dev values and the production values: the
  API server admits every object (CRDs from crds/, RBAC, workloads, the ClusterServingRuntime, monitoring CRs);
- `kubectl apply --dry-run=server -f manifests/` and `-f manifests/examples/` succeed once the CRDs are installed:
  the example ModelDeployments pass the CRD's schema and CEL rules at admission.
KServe's CRDs are its real ones (hack/fetch-kserve-crds.sh); Gateway API and Prometheus-operator CRDs are minimal
stand-ins from tests/fixtures/crds/.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.kserve import kserve_crd
from tests.integration.packaging.chart_support import CHART, FIXTURE_CRDS, REPO

pytestmark = pytest.mark.k8s

MANIFESTS = REPO / "manifests"
# CRDs the chart's objects need besides its own crds/ and KServe's: Gateway API and Prometheus operator stand-ins.
STAND_IN_CRDS = [
    "httproutes.gateway.networking.k8s.io.yaml",
    "servicemonitors.monitoring.coreos.com.yaml",
    "podmonitors.monitoring.coreos.com.yaml",
    "prometheusrules.monitoring.coreos.com.yaml",
]


@pytest.fixture(scope="module")
def cluster(kube_apiserver: Any) -> Any:
    """The shared API server with KServe's real CRDs, the stand-ins and the project's CRDs installed and established."""
    kserve = [kserve_crd("inferenceservices"), kserve_crd("clusterservingruntimes")]
    files = kserve + [FIXTURE_CRDS / name for name in STAND_IN_CRDS] + sorted((CHART / "crds").glob("*.yaml"))
    for path in files:
        kube_apiserver.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [d["metadata"]["name"] for p in files for d in yaml.safe_load_all(p.read_text()) if d]
    kube_apiserver.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    return kube_apiserver


def _namespace(cluster: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.mark.parametrize(
    "values", [None, "kind-dev-values.yaml", "production-values.yaml", "namespaced-values.yaml"], ids=str
)
def test_helm_install_is_admitted(cluster: Any, values: str | None) -> None:
    namespace = _namespace(cluster, "chart")
    release = f"mlp-{uuid.uuid4().hex[:6]}"
    args = ["install", release, str(CHART), "--namespace", namespace, "--timeout", "120s"]
    if values:
        args += ["-f", str(CHART / "ci" / values)]
    # Cluster-scoped names must not collide with other releases on the shared API server.
    args += ["--set", f"operator.peering.name={release}-peering"]
    try:
        result = cluster.helm(*args)
        assert "STATUS: deployed" in result.stdout, result.stdout
        status = json.loads(cluster.helm("status", release, "--namespace", namespace, "-o", "json").stdout)
        assert status["info"]["status"] == "deployed"
        # The NOTES tell the user what to do next.
        assert "ModelDeployment" in status["info"]["notes"]
        deployments = json.loads(cluster.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)
        names = {d["metadata"]["name"] for d in deployments["items"]}
        assert f"{release}-ml-pipeline-operator" in names
        if values != "namespaced-values.yaml":
            runtime = cluster.kubectl("get", "clusterservingruntime", f"{release}-ml-pipeline-predictor", "-o", "name")
            assert runtime.stdout.strip()
        if values is None:
            _operator_can_do_exactly_its_job(cluster, namespace, f"{release}-ml-pipeline-operator")
        if values == "namespaced-values.yaml":
            # A tenant operator may act in its own namespace only.
            who = f"system:serviceaccount:{namespace}:{release}-ml-pipeline-operator"
            mine = cluster.kubectl("auth", "can-i", "watch", "modeldeployments.mlpipeline.io", "-n", namespace,
                                   "--as", who, check=False)  # fmt: skip
            other = cluster.kubectl("auth", "can-i", "watch", "modeldeployments.mlpipeline.io", "-n", "default",
                                    "--as", who, check=False)  # fmt: skip
            assert (mine.stdout.strip(), other.stdout.strip()) == ("yes", "no")
        if values == "kind-dev-values.yaml":
            # Dev mode generated its credentials; a second render (upgrade) keeps them (lookup).
            secret_name = f"{release}-ml-pipeline-credentials"
            before = cluster.kubectl("get", "secret", secret_name, "-n", namespace, "-o", "json").stdout
            cluster.helm("upgrade", release, str(CHART), "--namespace", namespace, "--reuse-values")
            after = cluster.kubectl("get", "secret", secret_name, "-n", namespace, "-o", "json").stdout
            assert json.loads(before)["data"] == json.loads(after)["data"]
        if values == "production-values.yaml":
            kinds = cluster.kubectl("get", "servicemonitors,podmonitors,prometheusrules", "-n", namespace, "-o", "name")
            assert len(kinds.stdout.split()) == 3
    finally:
        cluster.helm("uninstall", release, "--namespace", namespace, check=False)


def test_kubectl_apply_dry_run_server_accepts_manifests(cluster: Any) -> None:
    # Server-side dry run admits nothing for real, so the namespace the manifests target must exist first.
    cluster.kubectl("create", "namespace", "ml-pipeline", check=False)
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(MANIFESTS))
    applied = result.stdout.splitlines()
    assert any("deployment.apps/ml-pipeline-operator" in line for line in applied), result.stdout
    assert any("cronjob.batch/ml-pipeline-drift" in line for line in applied)
    assert any("job.batch/ml-pipeline-train-1" in line for line in applied)
    assert any("clusterservingruntime.serving.kserve.io/ml-pipeline-predictor" in line for line in applied)
    assert all("(server dry run)" in line for line in applied)

    examples = cluster.kubectl("apply", "--dry-run=server", "-n", "ml-pipeline", "-f", str(MANIFESTS / "examples"))
    assert examples.stdout.count("modeldeployment.mlpipeline.io/") == 3, examples.stdout
    assert examples.stdout.count("inferenceservice.serving.kserve.io/sentiment-raw") == 1, examples.stdout


def test_api_server_refuses_a_bad_example(cluster: Any, tmp_path: Path) -> None:
    """The CRD's CEL rules are live: the dry run above means the examples really pass them."""
    example = yaml.safe_load((MANIFESTS / "examples" / "modeldeployment-canary-raw.yaml").read_text())
    example["spec"]["rollout"]["steps"] = [50, 25, 100]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(example))
    cluster.kubectl("create", "namespace", "ml-pipeline", check=False)
    result = cluster.kubectl("apply", "--dry-run=server", "-n", "ml-pipeline", "-f", str(bad), check=False)
    assert result.returncode != 0
    assert "strictly increasing" in result.stderr


def _operator_can_do_exactly_its_job(cluster: Any, namespace: str, service_account: str) -> None:
    """The API server's own RBAC verdicts for the operator's ServiceAccount (kubectl auth can-i --as)."""
    who = f"system:serviceaccount:{namespace}:{service_account}"

    def can(verb: str, resource: str, where: str = "elsewhere") -> bool:
        resource, _, subresource = resource.partition("/")
        extra = [f"--subresource={subresource}"] if subresource else []
        result = cluster.kubectl("auth", "can-i", verb, resource, *extra, "-n", where, "--as", who, check=False)
        return result.stdout.strip() == "yes"

    allowed = [
        ("watch", "modeldeployments.mlpipeline.io"),
        ("patch", "modeldeployments.mlpipeline.io/status"),
        ("update", "modeldeployments.mlpipeline.io/finalizers"),
        ("create", "inferenceservices.serving.kserve.io"),
        ("delete", "httproutes.gateway.networking.k8s.io"),
        ("create", "events"),
    ]
    denied = [
        ("get", "secrets"),
        ("create", "pods"),
        ("delete", "modeldeployments.mlpipeline.io"),
        ("update", "modeldeployments.mlpipeline.io/status"),
        ("create", "deployments.apps"),
        ("update", "clusterroles.rbac.authorization.k8s.io"),
    ]
    assert [a for a in allowed if not can(*a)] == []
    assert [d for d in denied if can(*d)] == []
    assert can("patch", "clusterkopfpeerings.kopf.dev", "default")
    assert can("watch", "customresourcedefinitions.apiextensions.k8s.io", "default")
