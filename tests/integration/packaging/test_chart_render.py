"""The Helm chart, checked with the real helm binary and offline Kubernetes schemas.

- `helm lint --strict` and `helm template` pass for the default values and every ci/*.yaml values file;
- every rendered object validates against the Kubernetes JSON schemas (kubernetes-validate, strict) for the oldest
  and newest Kubernetes the chart supports; ModelDeployments validate against the project's CRD schema; other
  custom resources are skipped with a recorded reason;
- values.schema.json refuses bad values with a message naming the field;
- security, RBAC, batch settings, credentials and monitoring come out as the chart promises.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.fixtures.operator_rbac import NAMESPACED_RULES, as_sets
from tests.integration.packaging.chart_support import (
    CHART,
    REPO,
    VALUES_CASES,
    VALUES_IDS,
    Render,
    pod_specs,
    run,
    tool,
)

pytestmark = pytest.mark.integration

# Oldest (Chart.yaml kubeVersion) and newest Kubernetes the schemas are checked against.
KUBE_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]

# Custom resources that have no offline schema here, and why that is acceptable.
SKIPPED_KINDS = {
    "ClusterServingRuntime": "KServe's CRD is not vendored; the runtime is checked field by field below",
    "InferenceService": "KServe's CRD is not vendored; the example is admitted by the API server (dry run)",
    "ClusterKopfPeering": "kopf's peering CRD has no spec (status only, preserve-unknown-fields)",
    "KopfPeering": "kopf's peering CRD has no spec (status only, preserve-unknown-fields)",
    "ServiceMonitor": "Prometheus operator CRD not vendored; rendered only when monitoring is enabled",
    "PodMonitor": "Prometheus operator CRD not vendored; rendered only when monitoring is enabled",
    "PrometheusRule": "Prometheus operator CRD not vendored; its expressions are checked against exported metrics",
}


def _crd_schema(path: Path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return _strict(version["schema"]["openAPIV3Schema"])


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 structural schema as a JSON schema: unknown fields are errors (the API server prunes them)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


MODELDEPLOYMENT_SCHEMA = _crd_schema(CHART / "crds" / "modeldeployments.mlpipeline.io.yaml")
# metadata is validated by the API server itself; the CRD leaves it open.
MODELDEPLOYMENT_SCHEMA["properties"]["metadata"] = {"type": "object"}


def validate_object(obj: dict[str, Any], kube_version: str) -> str | None:
    """Raise on an invalid object; return a skip reason for kinds without an offline schema."""
    kind = obj["kind"]
    if kind == "ModelDeployment":
        jsonschema.validate(obj, MODELDEPLOYMENT_SCHEMA)
        return None
    if kind in SKIPPED_KINDS:
        return SKIPPED_KINDS[kind]
    kubernetes_validate.validate(obj, kube_version, strict=True)
    return None


@pytest.mark.parametrize("values", VALUES_CASES, ids=VALUES_IDS)
def test_helm_lint_strict(values: Path | None, helm_home: dict[str, str]) -> None:
    argv = [tool("helm"), "lint", "--strict", str(CHART)]
    if values is not None:
        argv += ["-f", str(values)]
    result = run(argv, env=helm_home)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUES_CASES, ids=VALUES_IDS)
def test_every_rendered_object_is_valid(
    values: Path | None, kube_version: str, helm_template: Render, record_property: Any
) -> None:
    objects = helm_template(values, include_crds=True)
    assert objects, "helm template rendered nothing"
    skipped: dict[str, str] = {}
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            reason = validate_object(obj, kube_version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{where} is invalid for Kubernetes {kube_version}: {exc}", pytrace=False)
        if reason:
            skipped[obj["kind"]] = reason
    record_property("skipped_kinds", json.dumps(skipped, sort_keys=True))
    # Only the listed custom resources may go unchecked.
    assert set(skipped) <= set(SKIPPED_KINDS)


def test_example_modeldeployments_match_the_crd(helm_template: Render) -> None:
    examples = [o for o in helm_template(CHART / "ci" / "examples-values.yaml") if o["kind"] == "ModelDeployment"]
    modes = {(o["spec"].get("deploymentMode", "RawDeployment"), "rollout" in o["spec"]) for o in examples}
    assert len(examples) == 3
    assert ("RawDeployment", True) in modes and ("Serverless", True) in modes
    for obj in examples:
        jsonschema.validate(obj, MODELDEPLOYMENT_SCHEMA)
    # The strict schema really refuses a misspelt field (so the check above means something).
    broken = json.loads(json.dumps(examples[0]))
    broken["spec"]["model"]["storageURI"] = broken["spec"]["model"].pop("storageUri")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, MODELDEPLOYMENT_SCHEMA)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--set", "operator.scope=everywhere"], "/operator/scope"),
        (["--set", "drift.schedule=every hour"], "/drift/schedule"),
        (["--set", "config.dbPort=70000"], "/config/dbPort"),
        (["--set", "config.storageUri=http://bucket/models"], "/config/storageUri"),
        (["--set", "config.s3Bucket=Not_A_Bucket"], "/config/s3Bucket"),
        (["--set", "podSecurityContext.runAsNonRoot=false"], "/podSecurityContext/runAsNonRoot"),
        (["--set", "containerSecurityContext.allowPrivilegeEscalation=true"], "allowPrivilegeEscalation"),
        (["--set", "config.extraEnv.DB_PASSWORD=hunter2"], "'DB_PASSWORD'"),
        (["--set", "operator.replicas=2", "--set", "operator.peering.enabled=false"], "peering"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "predictor.image.digest=md5:abc"], "/predictor/image/digest"),
        (["--set", "drift.resources.limits=null"], "/drift/resources"),
        (["--set", "unknownTopLevel=true"], "unknownTopLevel"),
        (["--set", "training.runId=Run_1"], "/training/runId"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_values_schema_rejects_bad_values(override: list[str], message: str, helm_home: dict[str, str]) -> None:
    argv = [tool("helm"), "template", "x", str(CHART), *override]
    result = run(argv, check=False, env=helm_home)
    assert result.returncode != 0, f"helm accepted {override}"
    assert "values don't meet the specifications of the schema" in result.stderr
    # helm names the offending field as a JSON pointer (/operator/scope).
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("values", VALUES_CASES, ids=VALUES_IDS)
def test_workloads_are_locked_down(values: Path | None, helm_template: Render) -> None:
    workloads = [o for o in helm_template(values) if pod_specs(o)]
    assert workloads
    for obj in workloads:
        for spec in pod_specs(obj):
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            pod_sc = spec.get("securityContext", {})
            assert pod_sc.get("runAsNonRoot") is True, where
            assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            mounts_tmp = False
            for container in spec["containers"] + spec.get("initContainers", []):
                sc = container["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["capabilities"]["drop"] == ["ALL"], where
                assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
                assert "memory" in container["resources"]["limits"], where
                mounts_tmp |= any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", []))
                assert not str(container["image"]).endswith(":latest"), where
            assert mounts_tmp, f"{where}: a read-only root needs a writable /tmp"


def test_default_render_holds_no_credentials(helm_template: Render) -> None:
    objects = helm_template(None, "--set", "training.enabled=true")
    assert not [o for o in objects if o["kind"] == "Secret"], "the chart must not create Secrets outside dev mode"
    # Variables holding a credential (MLP_OPERATOR_*_SECRET hold Secret names, not secrets).
    secret_like = re.compile(r"(PASSWORD|ACCESS_KEY|ACCESS_KEY_ID|TOKEN|WEBHOOK_URL)$")
    for obj in objects:
        for spec in pod_specs(obj):
            for container in spec["containers"]:
                for env in container.get("env", []):
                    if secret_like.search(env["name"]):
                        assert "secretKeyRef" in env.get("valueFrom", {}), f"{obj['metadata']['name']}: {env['name']}"
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert not [k for k in config["data"] if secret_like.search(k)]
    # The ConfigMap speaks mlcore.config's variable names.
    expected = {"DB_PORT", "DB_NAME", "DB_USER", "STORAGE_URI", "S3_BUCKET", "MODEL_NAME", "MAX_LENGTH"}
    assert expected <= set(config["data"])


def test_dev_mode_wires_the_dependencies(helm_template: Render) -> None:
    objects = helm_template(CHART / "ci" / "kind-dev-values.yaml")
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for component in ("postgres", "minio", "mlflow"):
        assert ("Deployment", f"ml-pipeline-{component}") in names
        assert ("Service", f"ml-pipeline-{component}") in names
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "ml-pipeline-config")
    assert config["data"]["DB_HOST"] == "ml-pipeline-postgres.ml-pipeline.svc"
    assert config["data"]["S3_ENDPOINT_URL"] == "http://ml-pipeline-minio.ml-pipeline.svc:9000"
    assert config["data"]["MLFLOW_TRACKING_URI"] == "http://ml-pipeline-mlflow.ml-pipeline.svc:5000"
    secret = next(o for o in objects if o["kind"] == "Secret")
    # Generated, random, and complete enough for the operator's envFrom into predictors.
    assert {"DB_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret["data"])
    assert {"DB_HOST", "DB_USER", "S3_ENDPOINT_URL"} <= set(secret["stringData"])
    assert ("Job", "ml-pipeline-train-1") in names


def test_operator_rbac_is_exactly_what_it_needs(helm_template: Render) -> None:
    objects = helm_template(None)
    role = next(o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "ml-pipeline-operator")
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert rules == as_sets(NAMESPACED_RULES, cluster=True)
    crds = next(o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-crds"))
    assert crds["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]}
    ]
    # A namespaced install gets a Role and a namespaced peering object instead.
    scoped = helm_template(CHART / "ci" / "namespaced-values.yaml")
    kinds = {o["kind"] for o in scoped}
    assert {"Role", "RoleBinding", "KopfPeering"} <= kinds
    assert "ClusterKopfPeering" not in kinds
    deployment = next(o for o in scoped if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLP_OPERATOR_NAMESPACES"] == "ml-pipeline"


def test_batch_settings(helm_template: Render) -> None:
    objects = helm_template(None, "--set", "training.enabled=true")
    cron = next(o for o in objects if o["kind"] == "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["startingDeadlineSeconds"] > 0
    assert cron["spec"]["successfulJobsHistoryLimit"] >= 1 and cron["spec"]["failedJobsHistoryLimit"] >= 1
    drift_job = cron["spec"]["jobTemplate"]["spec"]
    assert drift_job["backoffLimit"] >= 1 and drift_job["activeDeadlineSeconds"] > 0
    job = next(o for o in objects if o["kind"] == "Job")
    assert job["spec"]["backoffLimit"] >= 0
    assert job["spec"]["activeDeadlineSeconds"] > 0 and job["spec"]["ttlSecondsAfterFinished"] > 0
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "ml-pipeline-config"}}]
    assert container["command"] == ["python", "-m", "training_job"]


def test_serving_runtime(helm_template: Render) -> None:
    runtime = next(o for o in helm_template(None) if o["kind"] == "ClusterServingRuntime")
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert runtime["spec"]["supportedModelFormats"][0]["name"] == "sentiment-transformers"
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["command"] == ["python", "-m", "predictor"]
    assert "--model_name={{.Name}}" in container["args"] and "--model_dir=/mnt/models" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "ml-pipeline-credentials"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "AWS_SECRET_ACCESS_KEY"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["ports"][0]["name"] == "http1"
    # The operator's default predictor image is the chart's predictor image.
    operator = next(o for o in helm_template(None) if o["kind"] == "Deployment")
    op_env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert op_env["MLP_OPERATOR_PREDICTOR_IMAGE"] == container["image"]


_METRIC_CALL = re.compile(r"""(?:Counter|Gauge|Histogram|Summary)\(\s*["']([a-z_:]+)["']""")


def _exported_metric_names() -> set[str]:
    """Metric names the components register (prometheus_client calls), read from their source."""
    names: set[str] = set()
    for folder in ("predictor", "drift_cronjob", "operator/mlpipeline_operator"):
        for path in (REPO / folder).rglob("*.py"):
            names |= set(_METRIC_CALL.findall(path.read_text()))
    return names


def _referenced_metrics(text: str) -> set[str]:
    found = set(re.findall(r"\b((?:mlp|mlpipeline)_[a-z_]+)\b", text))
    # Histogram series and prometheus_client's _total suffix map back to the registered name.
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in found if not name.startswith("mlpipeline_io_")}


def test_monitoring_only_when_enabled_and_uses_exported_metrics(helm_template: Render) -> None:
    monitoring_kinds = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    default = helm_template(None)
    assert not [o for o in default if o["kind"] in monitoring_kinds]
    assert not [o for o in default if o["metadata"]["name"].endswith("-dashboard")]

    objects = helm_template(CHART / "ci" / "production-values.yaml")
    assert monitoring_kinds <= {o["kind"] for o in objects}
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"MLPipelinePredictorHighErrorRate", "MLPipelineDriftAlertOpen", "MLPipelineCanaryRolledBack"} <= set(alerts)
    dashboard_cm = next(o for o in objects if o["metadata"]["name"].endswith("-dashboard"))
    dashboard = json.loads(dashboard_cm["data"]["ml-pipeline.json"])
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for needed in ("requests per second", "p95", "label distribution", "confidence", "drift share", "canary weight"):
        assert needed in titles

    exported = _exported_metric_names()
    referenced = _referenced_metrics(yaml.safe_dump(rule) + dashboard_cm["data"]["ml-pipeline.json"])
    missing = {m for m in referenced if m not in exported and f"{m}_total" not in exported}
    assert not missing, f"alerts/dashboard use metrics no component exports: {sorted(missing)}"


def test_operator_peering_matches_the_chart(helm_template: Render) -> None:
    # The chart's crds/kopf-peering.yaml is the one copy (the operator's test harness installs it too).
    crds = list(yaml.safe_load_all((CHART / "crds" / "kopf-peering.yaml").read_text()))
    assert {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds} == {
        ("kopf.dev", "KopfPeering"),
        ("kopf.dev", "ClusterKopfPeering"),
    }
    peering = next(o for o in helm_template(None) if o["kind"] == "ClusterKopfPeering")
    operator = next(o for o in helm_template(None) if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLP_OPERATOR_PEERING_NAME"] == peering["metadata"]["name"]
    assert env["MLP_OPERATOR_STANDALONE"] == "false"


def test_network_policies_cover_every_workload(helm_template: Render) -> None:
    objects = helm_template(CHART / "ci" / "kind-dev-values.yaml")
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    selected = [p["spec"]["podSelector"]["matchLabels"] for p in policies]
    for obj in objects:
        if obj["kind"] not in {"Deployment", "CronJob"}:
            continue
        labels = (
            obj["spec"]["template"]["metadata"]["labels"]
            if obj["kind"] == "Deployment"
            else obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        )
        assert any(all(labels.get(k) == v for k, v in sel.items()) for sel in selected), obj["metadata"]["name"]
