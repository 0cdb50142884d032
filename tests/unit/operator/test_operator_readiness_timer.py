"""The readiness timer goes through the handlers' shared flow: an invalid spec is recorded once as phase Failed
instead of raising from the timer on every tick, and readiness comes from the InferenceService index.

The Kubernetes API is played by a small in-memory double of the three calls the flow makes (the integration
tests run the same handlers against the real API server); kopf's Event posting is captured."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from mlcore.db import create_db_engine, upgrade_to_head
from mlpipeline_operator import handlers
from mlpipeline_operator.config import OperatorConfig
from mlpipeline_operator.render import Defaults
from mlpipeline_operator.runtime import Runtime

pytestmark = pytest.mark.unit

NS, NAME = "team", "web"


class ApiDouble:
    """get_deployment / write_status / get_inference_service over one stored ModelDeployment."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.status_writes: list[dict[str, Any]] = []
        self.isvc_gets = 0

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.body) if (namespace, name) == (NS, NAME) else None

    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.status_writes.append(status)
        self.body["status"] = copy.deepcopy(status)
        return self.body

    def get_inference_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.isvc_gets += 1
        return None


def deployment(spec: dict[str, Any], phase: str = "Succeeded") -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": NAME, "uid": "u-1", "generation": 1},
        "spec": spec,
        "status": {
            "phase": phase,
            "message": "version 1 is serving",
            "stable": {"version": "1", "storageUri": "s3://m/sentiment/1", "rolloutId": "g1-v1"},
            "conditions": [],
        },
    }


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "event", lambda body, *, type, reason, message: posted.append((reason, message)))
    return posted


def runtime_for(api: ApiDouble, tmp_path: Any) -> Runtime:
    engine = create_db_engine(f"sqlite:///{tmp_path}/db.sqlite")
    upgrade_to_head(engine)
    return Runtime(
        config=OperatorConfig(metrics_port=0, liveness_endpoint=None, verify_models=False),
        kube=api,  # type: ignore[arg-type]
        engine=engine,
        defaults=Defaults(),
    )


def tick(runtime: Runtime, api: ApiDouble, readiness: dict[Any, Any]) -> None:
    handlers.track_readiness(
        memo=kopf.Memo(runtime=runtime),
        namespace=NS,
        name=NAME,
        status=api.body["status"],
        inference_service_readiness=readiness,
    )


def test_an_invalid_spec_fails_once_instead_of_raising_on_every_tick(tmp_path, events) -> None:
    # A storage URI scheme the spec refuses (an object stored before the CRD's rule, or written around it).
    api = ApiDouble(deployment({"model": {"name": "sentiment", "version": "1", "storageUri": "ftp://m/1"}}))
    runtime = runtime_for(api, tmp_path)
    ready = {(NS, NAME): [(True, "InferenceService is Ready")]}

    tick(runtime, api, ready)  # before: DataValidationError out of the timer, status untouched
    assert api.body["status"]["phase"] == "Failed"
    assert "spec.model.storageUri" in api.body["status"]["message"]
    degraded = next(c for c in api.body["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and "storageUri" in degraded["message"]
    assert [reason for reason, _ in events] == ["Failed"]

    for _ in range(3):  # the same problem on the next ticks: nothing more is written or posted
        tick(runtime, api, ready)
    assert len(api.status_writes) == 1
    assert [reason for reason, _ in events] == ["Failed"]


def test_readiness_is_read_from_the_index_not_the_api(tmp_path, events) -> None:
    spec = {"model": {"name": "sentiment", "version": "1", "storageUri": "s3://m/sentiment/1"}}
    api = ApiDouble(deployment(spec))
    runtime = runtime_for(api, tmp_path)

    tick(runtime, api, {(NS, NAME): [(False, "InferenceService not Ready: RevisionMissing")]})
    ready = next(c for c in api.body["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["message"]) == ("False", "InferenceService not Ready: RevisionMissing")

    tick(runtime, api, {(NS, NAME): [(True, "InferenceService is Ready")]})
    ready = next(c for c in api.body["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["message"]) == ("True", "InferenceService is Ready")
    assert api.body["status"]["phase"] == "Succeeded"
    assert api.isvc_gets == 0  # a Succeeded deployment with an indexed InferenceService needs no GET
    assert events == []  # only conditions changed: no decision, no Event
