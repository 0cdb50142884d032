"""Helpers for the packaging checks: render the chart with the real helm binary, load YAML streams.

helm and kubectl come from the pinned tools dir (hack/install-helm-kubectl.sh); a missing binary fails the test
with the command to run, never skips it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.services import ServiceError, find_tool

REPO = Path(__file__).resolve().parents[3]
# MLP_CHART_DIR checks another copy of the chart (e.g. a packaged one) with the same tests.
CHART = Path(os.environ.get("MLP_CHART_DIR") or REPO / "charts" / "ml-pipeline")
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
# Every values set the chart must render: the defaults and each example values file.
VALUES_CASES = [None, *CI_VALUES]
VALUES_IDS = ["default", *[p.stem for p in CI_VALUES]]
FIXTURE_CRDS = REPO / "tests" / "fixtures" / "crds"


def tool(name: str) -> str:
    try:
        return find_tool(name, "bash hack/install-helm-kubectl.sh")
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)


def run(argv: list[str], *, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False, env=env)
    if check and result.returncode != 0:
        pytest.fail(f"`{' '.join(argv)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A throwaway helm home: no repositories, no cache shared with the user."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    env.update(
        HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"), HELM_DATA_HOME=str(home / "data")
    )
    return env


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm_template(helm_home: dict[str, str]) -> Iterator[Render]:
    """render(values_file=None, *extra_args, include_crds=False) -> the rendered objects (cached per arguments)."""
    helm = tool("helm")
    cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def render(values: Path | None = None, *args: str, include_crds: bool = False) -> list[dict[str, Any]]:
        key = (values, args, include_crds)
        if key not in cache:
            argv = [helm, "template", "ml-pipeline", str(CHART), "--namespace", "ml-pipeline"]
            if include_crds:
                argv.append("--include-crds")
            if values is not None:
                argv += ["-f", str(values)]
            cache[key] = load_all(run([*argv, *args], env=helm_home).stdout)
        return cache[key]

    yield render


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec(s) of a workload object (Deployment, Job, CronJob); [] for other kinds."""
    kind = obj["kind"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return [obj["spec"]["template"]["spec"]]
    if kind == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []
