"""Kubernetes API access for the handlers: the ModelDeployment, its InferenceServices (and the predictor Deployment
KServe makes of one), its HTTPRoute and its training Jobs."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from mlpipeline_operator import (
    GROUP,
    ISVC_GROUP,
    ISVC_PLURAL,
    ISVC_VERSION,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    MANAGER,
    PLURAL,
    ROUTE_GROUP,
    ROUTE_PLURAL,
    ROUTE_VERSION,
    VERSION,
)
from mlpipeline_operator.render import Desired
from mlpipeline_operator.workloads import predictor_deployment_name

_CONFLICT_RETRIES = 5


def load_configuration(kubeconfig: str | None) -> client.Configuration:
    """In-cluster service account, else the kubeconfig file (explicit path, then $KUBECONFIG / ~/.kube/config)."""
    configuration = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return configuration
        except config.ConfigException:
            pass
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration


# (connect, read) seconds for every call that names none: a hung API server must not hold a handler's lock for ever.
REQUEST_TIMEOUT = (5.0, 30.0)


def api_client(configuration: client.Configuration, pool_size: int = 32) -> client.ApiClient:
    configuration.connection_pool_maxsize = pool_size  # the handlers' threads share one pool
    api = client.ApiClient(configuration)
    request = api.rest_client.request

    def request_with_timeout(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=_request_timeout or REQUEST_TIMEOUT, **kwargs)

    api.rest_client.request = request_with_timeout
    return api


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.objects = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)

    # --- the ModelDeployment ---
    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _none_if_missing(
            lambda: self.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        )

    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        # A JSON patch replaces the whole status: nothing of a previous canary can linger as a merge would leave it.
        body = [{"op": "add", "path": "/status", "value": status}]
        return dict(
            self.objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, body, _content_type="application/json-patch+json"
            )
        )

    # --- children ---
    def get_inference_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _none_if_missing(
            lambda: self.objects.get_namespaced_custom_object(ISVC_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, name)
        )

    def get_predictor_workload(self, namespace: str, inference_service: str) -> dict[str, Any] | None:
        """KServe's Deployment for an InferenceService's predictor (RawDeployment), as a plain dict."""
        name = predictor_deployment_name(inference_service)
        return _none_if_missing(
            lambda: self.api.sanitize_for_serialization(self.apps.read_namespaced_deployment(name, namespace))
        )

    def list_inference_services(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        selector = f"{LABEL_DEPLOYMENT}={deployment},{LABEL_MANAGED_BY}={MANAGER}"
        listed = self.objects.list_namespaced_custom_object(
            ISVC_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, label_selector=selector
        )
        return list(listed.get("items") or [])

    def apply(self, desired: Desired, namespace: str, deployment: str, keep: set[str] | None = None) -> list[str]:
        """Make the children what `desired` says; InferenceServices not desired (nor in `keep`) are deleted.

        Returns the names changed. Only the fields the operator owns are replaced; what KServe adds stays.
        """
        changed = []
        for name, body in desired.inference_services.items():
            if self._put(ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL, namespace, name, body):
                changed.append(name)
        for item in self.list_inference_services(namespace, deployment):
            name = item["metadata"]["name"]
            if name not in desired.inference_services and name not in (keep or set()):
                self.delete(ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL, namespace, name)
                changed.append(name)
        if desired.route is not None:
            route_name = desired.route["metadata"]["name"]
            if self._put(ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL, namespace, route_name, desired.route):
                changed.append(route_name)
        return changed

    # --- the retraining loop's Jobs (batch/v1: create, get, list, watch, delete) ---
    def create_job(self, body: dict[str, Any]) -> bool:
        """Create the Job; False when one of that name exists already (a restarted operator adopts it)."""
        try:
            self.batch.create_namespaced_job(body["metadata"]["namespace"], body)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.api.sanitize_for_serialization(self.batch.read_namespaced_job(name, namespace)))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and (in the background) its pods."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def delete_jobs(self, namespace: str, deployment: str) -> list[str]:
        selector = f"{LABEL_DEPLOYMENT}={deployment},{LABEL_MANAGED_BY}={MANAGER},{LABEL_ROLE}=retraining"
        names = [j.metadata.name for j in self.batch.list_namespaced_job(namespace, label_selector=selector).items]
        return [f"job/{n}" for n in names if self.delete_job(namespace, n)]

    def delete_children(self, namespace: str, deployment: str) -> list[str]:
        """Delete every InferenceService and the HTTPRoute of a deployment (garbage collection may not run)."""
        deleted = []
        for item in self.list_inference_services(namespace, deployment):
            name = item["metadata"]["name"]
            if self.delete(ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL, namespace, name):
                deleted.append(name)
        try:
            if self.delete(ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL, namespace, deployment):
                deleted.append(f"httproute/{deployment}")
        except ApiException as exc:  # no Gateway API installed: nothing to delete
            if exc.status != 404:
                raise
        return deleted

    def delete(self, group: str, version: str, plural: str, namespace: str, name: str) -> bool:
        try:
            self.objects.delete_namespaced_custom_object(group, version, namespace, plural, name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def _put(self, group: str, version: str, plural: str, namespace: str, name: str, body: dict[str, Any]) -> bool:
        try:  # the common case first (a new child): one round trip
            self.objects.create_namespaced_custom_object(group, version, namespace, plural, body)
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise
        for attempt in range(_CONFLICT_RETRIES):
            current = _none_if_missing(
                lambda: self.objects.get_namespaced_custom_object(group, version, namespace, plural, name)
            )
            try:
                if current is None:
                    self.objects.create_namespaced_custom_object(group, version, namespace, plural, body)
                    return True
                merged = _merge_owned(current, body)
                if merged == current:
                    return False
                self.objects.replace_namespaced_custom_object(group, version, namespace, plural, name, merged)
                return True
            except ApiException as exc:
                if exc.status != 409 or attempt == _CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))  # someone else wrote it in between: read again
        return False


def _merge_owned(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """`current` with the operator's fields taken from `desired`: spec, its labels, annotations, owner reference."""
    merged = dict(current)
    meta = dict(current.get("metadata") or {})
    want = desired["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), **want.get("labels", {})}
    meta["annotations"] = {**(meta.get("annotations") or {}), **want.get("annotations", {})}
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("uid") != want["ownerReferences"][0]["uid"]]
    meta["ownerReferences"] = [*owners, *want["ownerReferences"]]
    merged["metadata"] = meta
    merged["spec"] = desired["spec"]
    return merged


def _none_if_missing(call: Any) -> dict[str, Any] | None:
    try:
        return dict(call())
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
