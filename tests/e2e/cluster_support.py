"""Shared by the tests that run on the single-node cluster of hack/cluster-up.sh: where it is, and kubectl/helm."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(os.environ.get("MLP_TOOLS_DIR", Path.home() / ".cache/ml-pipeline/tools")) / "bin"
KUBECONFIG = Path(
    os.environ.get("MLP_CLUSTER_KUBECONFIG", Path.home() / ".cache/ml-pipeline/cluster/run/admin.kubeconfig")
)
# The node IP is the gateway of the cluster's pod bridge (hack/cluster-env.sh): pods reach the host there.
NODE_IP = os.environ.get("MLP_NODE_IP", "10.217.0.1")
POD_PREFIX = os.environ.get("MLP_POD_PREFIX", "10.217.")


class Kubectl:
    """kubectl (and helm) against the cluster; a failure raises with stderr, and diagnostics() says why."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.argv = [str(TOOLS / "kubectl"), "--kubeconfig", str(kubeconfig)]

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 180, check: bool = True) -> str:
        return self._run([*self.argv, *args], stdin, timeout, check)

    def helm(self, *args: str, timeout: float = 600) -> str:
        return self._run([str(TOOLS / "helm"), "--kubeconfig", str(self.kubeconfig), *args], None, timeout, True)

    @staticmethod
    def _run(argv: list[str], stdin: str | None, timeout: float, check: bool) -> str:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:1] + argv[3:])} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def diagnostics(self) -> str:
        """What a person would look at first when something is not Ready: objects, events, pods, their logs."""
        ns = ["-n", self.namespace]
        parts = [self("get", "all,events", *ns, "-o", "wide", check=False)]
        parts.append(self("describe", "pods", *ns, check=False))
        for pod in self("get", "pods", *ns, "-o", "name", check=False).split():
            parts.append(f"--- logs {pod}\n" + self("logs", *ns, pod, "--all-containers", "--tail=60", check=False))
        return "\n".join(parts)


def unavailable(reason: str) -> None:
    """Skip where the cluster is optional; fail where the caller brought it up for these tests (.ci/run sets
    MLP_E2E_REQUIRED=1), so a cluster stage can never pass by skipping everything."""
    if os.environ.get("MLP_E2E_REQUIRED") == "1":
        pytest.fail(f"the cluster e2e tests are required here: {reason}")
    pytest.skip(reason)


def cluster_or_skip(namespace: str) -> Kubectl:
    if not KUBECONFIG.is_file() or not (TOOLS / "kubectl").is_file():
        unavailable(f"no cluster from hack/cluster-up.sh ({KUBECONFIG} absent)")
    kube = Kubectl(KUBECONFIG, namespace)
    try:
        kube("get", "--raw", "/readyz", timeout=10)
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        unavailable(f"cluster at {KUBECONFIG} not answering: {exc}")
    return kube
