"""skaffold, for real, with the project's skaffold.yaml on the single-node cluster of hack/cluster-up.sh: `skaffold
build -p node` builds the operator, predictor and drift images through hack/skaffold-build.sh (the custom builder
that wraps hack/build-images.sh), the tags it lists are loaded into the node (there is no registry), and `skaffold
deploy -p node` installs the chart with exactly those images (setValueTemplates), the operator pod becomes Ready
from its image, and a ModelDeployment is served by a predictor pod from the predictor image skaffold built.

Needs the cluster, KServe's controller, skaffold (hack/build-skaffold.sh) with helm 3 (hack/build-helm3.sh) and
socat; skips without them (fails under MLP_E2E_REQUIRED=1, as in .ci/run). Runs after
tests/e2e/test_chart_on_node.py when both are given: both install the release `ml-pipeline`, whose cluster-scoped
objects one release at a time can own.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster_support import (
    KUBECONFIG,
    TOOLS,
    Kubectl,
    cluster_or_skip,
    infer_request,
    infer_url,
    post_when_routed,
    ready_inference_service,
    release_namespace,
    site_values,
    unavailable,
)
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.s3 import S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "ml-pipeline"  # skaffold.yaml's release namespace
SECRET = "mlp-e2e-credentials"
CONTEXT = "mlp"  # hack/cluster-up.sh's kube-context: it activates the node profile
# helm 3 first on skaffold's PATH (hack/build-helm3.sh: skaffold v2.16 cannot drive helm 4), kubectl after it.
SKAFFOLD_PATH = TOOLS.parent / "skaffold-path"
ARTIFACTS = ("ml-pipeline-operator", "ml-pipeline-predictor", "ml-pipeline-drift-cronjob")


@pytest.fixture(scope="module")
def kubectl() -> Kubectl:
    kube = cluster_or_skip(NAMESPACE, node_services=True)
    if not (TOOLS / "skaffold").is_file():
        unavailable(f"skaffold is not built ({TOOLS / 'skaffold'}): bash hack/build-skaffold.sh")
    if not (SKAFFOLD_PATH / "helm").exists():
        unavailable(f"helm 3 for skaffold is not built ({SKAFFOLD_PATH / 'helm'}): bash hack/build-helm3.sh")
    return kube


def skaffold(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    argv = [str(TOOLS / "skaffold"), *args, "--kubeconfig", str(KUBECONFIG), "--kube-context", CONTEXT]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"skaffold {' '.join(args)} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="module")
def deployed(
    kubectl: Kubectl,
    kserve_controller: None,
    database: tuple[str, int],
    object_store: str,
    postgres_server: PostgresServer,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """`skaffold build` then `skaffold deploy` of what it built; yields image name -> the tag skaffold gave it."""
    work = tmp_path_factory.mktemp("skaffold")
    env = {
        **os.environ,
        "PATH": os.pathsep.join((str(SKAFFOLD_PATH), str(TOOLS), os.environ.get("PATH", ""))),
        "MLP_NODE_VALUES": str(work / "site-values.yaml"),
        "SKAFFOLD_UPDATE_CHECK": "false",
        "SKAFFOLD_DISABLE_MONITORING": "true",
    }
    with release_namespace(kubectl, lambda: skaffold("delete", "-p", "node", env=env, timeout=300)):
        values = site_values(kubectl, SECRET, database, object_store, postgres_server, s3_server)
        (work / "site-values.yaml").write_text(json.dumps(values))  # JSON is YAML
        began = time.monotonic()
        skaffold("build", "-p", "node", "--file-output", str(work / "build.json"), env=env)
        print(f"skaffold build: {time.monotonic() - began:.0f}s")
        builds = json.loads((work / "build.json").read_text())["builds"]
        # No registry: the tags skaffold deploys go into the node's containerd (skaffold does this itself for kind).
        subprocess.run(
            ["bash", str(REPO / "hack/cluster-load-images.sh"), *(b["tag"] for b in builds)], check=True, timeout=600
        )
        began = time.monotonic()
        try:
            skaffold(
                "deploy", "-p", "node", "--build-artifacts", str(work / "build.json"), "--status-check=true", env=env
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{kubectl.diagnostics()}") from exc
        print(f"skaffold deploy: {time.monotonic() - began:.0f}s")
        yield {b["imageName"]: b["tag"] for b in builds}


def test_skaffold_builds_the_three_images_through_build_images(deployed: dict[str, str]) -> None:
    assert sorted(deployed) == sorted(ARTIFACTS), deployed
    for name, tag in deployed.items():
        # skaffold tags a local, unpushed image by its ID: the very image hack/build-images.sh built and smoke-ran.
        ref = f"ml-pipeline/{name.removeprefix('ml-pipeline-')}:0.1.0"
        built = subprocess.run(
            ["/usr/bin/docker", "image", "inspect", "-f", "{{.Id}}", ref],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        assert tag == f"{name}:{built.removeprefix('sha256:')}", (tag, built)


def test_the_chart_runs_the_images_skaffold_built(kubectl: Kubectl, deployed: dict[str, str]) -> None:
    pods = json.loads(
        kubectl("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator", "-o", "json")
    )
    (pod,) = pods["items"]
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True", kubectl.diagnostics()
    container = pod["spec"]["containers"][0]
    assert container["image"] == deployed["ml-pipeline-operator"], container["image"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env.get("MLP_OPERATOR_PREDICTOR_IMAGE") == deployed["ml-pipeline-predictor"], env
    (cronjob,) = json.loads(kubectl("get", "cronjobs", "-n", NAMESPACE, "-o", "json"))["items"]
    image = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == deployed["ml-pipeline-drift-cronjob"], image


def test_a_modeldeployment_is_served_by_the_predictor_skaffold_built(
    kubectl: Kubectl, deployed: dict[str, str]
) -> None:
    body: dict[str, Any] = {
        "apiVersion": "mlpipeline.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "sentiment", "namespace": NAMESPACE},
        "spec": {"model": {"name": "sentiment", "version": "1", "storageUri": "s3://mlpipeline/models/sentiment/1"}},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(body))
    isvc = kubectl.wait(
        "KServe reporting the InferenceService Ready", lambda: ready_inference_service(kubectl, "sentiment")
    )
    image = isvc["spec"]["predictor"]["containers"][0]["image"]
    assert image == deployed["ml-pipeline-predictor"], image
    url = infer_url(kubectl, "sentiment")
    reply = kubectl.wait(
        "the predictor answering", lambda: post_when_routed(url, infer_request("sk-1", "A fine film.")), 60, 1
    )
    assert reply["id"] == "sk-1" and reply["outputs"], reply
