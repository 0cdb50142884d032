"""skaffold.yaml against skaffold's own published JSON schema (from the pinned skaffold module's source, fetched
through the Go module proxy by hack/fetch-skaffold-schema.sh; no skaffold build), plus what the kind flow needs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.integration.packaging.chart_support import CHART, REPO

pytestmark = pytest.mark.integration

ARTIFACTS = {
    "ml-pipeline-operator": ("operator/Dockerfile", "operator"),
    "ml-pipeline-predictor": ("predictor/Dockerfile", "predictor"),
    "ml-pipeline-training-job": ("training_job/Dockerfile", "training"),
    "ml-pipeline-drift-cronjob": ("drift_cronjob/Dockerfile", "drift"),
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "skaffold.yaml").read_text())


@pytest.fixture(scope="module")
def schema(config: dict[str, Any]) -> dict[str, Any]:
    version = config["apiVersion"].removeprefix("skaffold/")
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "fetch-skaffold-schema.sh")],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "SKAFFOLD_SCHEMA_VERSION": version},
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"hack/fetch-skaffold-schema.sh failed:\n{result.stderr}", pytrace=False)
    return json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())


def test_skaffold_yaml_matches_the_published_schema(config: dict[str, Any], schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    assert error is None, f"skaffold.yaml: {error.message} at {list(error.absolute_path)}"
    # The schema is strict: a misspelt key is refused (so passing above means something).
    broken = json.loads(json.dumps(config))
    broken["deploy"]["helm"]["releases"][0]["valueFiles"] = ["typo.yaml"]
    assert not validator.is_valid(broken)


def test_four_artifacts_deployed_through_the_chart(config: dict[str, Any]) -> None:
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == set(ARTIFACTS)
    (release,) = config["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"]) == CHART or (REPO / release["chartPath"]).samefile(CHART)
    overrides = release["setValueTemplates"]
    for image, (dockerfile, key) in ARTIFACTS.items():
        assert artifacts[image]["docker"]["dockerfile"] == dockerfile
        sanitized = image.replace("-", "_")
        assert overrides[f"{key}.image.repository"] == f"{{{{.IMAGE_REPO_{sanitized}}}}}"
        assert overrides[f"{key}.image.tag"] == f"{{{{.IMAGE_TAG_{sanitized}}}}}"


def test_kind_profile_and_port_forwards(config: dict[str, Any]) -> None:
    (kind,) = [p for p in config["profiles"] if p["name"] == "kind"]
    assert kind["build"]["local"]["push"] is False
    assert {"kubeContext": "kind-.*"} in kind["activation"]
    patched = {p["path"]: p["value"] for p in kind["patches"]}
    values_files = patched["/deploy/helm/releases/0/valuesFiles"]
    assert all((REPO / f).is_file() for f in values_files)
    forwards = {(f["resourceName"], f["port"]) for f in config["portForward"]}
    assert {("sentiment-predictor", 80), ("ml-pipeline-mlflow", 5000), ("ml-pipeline-postgres", 5432)} <= forwards


def test_node_profile_builds_through_hack_and_never_pushes(config: dict[str, Any]) -> None:
    # The node profile (hack/cluster-up.sh's cluster, context "mlp"): the custom builder wraps hack/build-images.sh,
    # so machine details stay out of the Dockerfiles; it is run for real by tests/e2e/test_skaffold_on_node.py.
    (node,) = [p for p in config["profiles"] if p["name"] == "node"]
    assert {"kubeContext": "mlp"} in node["activation"]
    assert node["build"]["local"]["push"] is False
    built = {a["image"]: a["custom"] for a in node["build"]["artifacts"]}
    assert set(built) == set(ARTIFACTS) - {"ml-pipeline-training-job"}
    for image, custom in built.items():
        script, component = custom["buildCommand"].split()[1:]
        assert (REPO / script).is_file() and image == f"ml-pipeline-{component}"
        # What the Dockerfile copies (and the Dockerfile): a change there gives a new input-digest tag.
        dockerfile = ARTIFACTS[image][0]
        copied = {
            src.rstrip("/")
            for line in (REPO / dockerfile).read_text().splitlines()
            if line.startswith("COPY ") and "--from" not in line
            for src in line.split()[1:-1]
        }
        assert set(custom["dependencies"]["paths"]) == copied | {dockerfile}
    patched = {p["path"]: p.get("value") for p in node["patches"]}
    # The training image is not built there, so its overrides go.
    assert {k for k, p in patched.items() if "training.image" in k} == {
        f"/deploy/helm/releases/0/setValueTemplates/training.image.{f}" for f in ("repository", "tag", "digest")
    }
    values_files = patched["/deploy/helm/releases/0/valuesFiles"]
    assert (REPO / values_files[0]).is_file() and "MLP_NODE_VALUES" in values_files[1]
