"""manifests/ is generated from the chart (hack/generate-manifests.sh): a stale copy fails here."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.packaging.chart_support import REPO

pytestmark = pytest.mark.integration

MANIFESTS = REPO / "manifests"


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_manifests_are_in_sync_with_the_chart(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "generate-manifests.sh"), str(out)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _tree(out) == _tree(MANIFESTS), "file set differs: run `bash hack/generate-manifests.sh`"
    stale = [name for name in _tree(out) if not filecmp.cmp(out / name, MANIFESTS / name, shallow=False)]
    assert not stale, f"manifests/ is stale ({', '.join(stale)}): run `bash hack/generate-manifests.sh`"


def test_manifests_hold_what_kubectl_users_need() -> None:
    kinds: dict[str, set[str]] = {}
    for path in MANIFESTS.glob("*.yaml"):
        kinds[path.name] = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
    assert kinds["00-crds.yaml"] == {"CustomResourceDefinition"}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds["20-rbac.yaml"]
    assert {"Deployment", "ClusterKopfPeering"} <= kinds["30-operator.yaml"]
    assert kinds["40-predictor-runtime.yaml"] == {"ClusterServingRuntime"}
    assert kinds["50-training-job.yaml"] == {"Job"}
    assert kinds["60-drift-cronjob.yaml"] == {"CronJob"}
    # Plain manifests carry no Helm bookkeeping.
    text = "".join(p.read_text() for p in MANIFESTS.rglob("*.yaml"))
    assert "helm.sh/chart" not in text and "managed-by: Helm" not in text
    crd_names = {d["metadata"]["name"] for d in yaml.safe_load_all((MANIFESTS / "00-crds.yaml").read_text())}
    assert "modeldeployments.mlpipeline.io" in crd_names and "clusterkopfpeerings.kopf.dev" in crd_names
    assert {p.name for p in (MANIFESTS / "examples").glob("*.yaml")} == {
        "modeldeployment-basic.yaml",
        "modeldeployment-canary-raw.yaml",
        "modeldeployment-canary-serverless.yaml",
        "inferenceservice-raw.yaml",
    }
