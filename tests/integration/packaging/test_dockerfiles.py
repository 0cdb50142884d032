"""Static checks of the four Dockerfiles (no Docker engine runs here): what a reviewer would insist on.

Each image is multi-stage (build wheels/venv in one stage, copy into a slim runtime), starts FROM pinned bases
(an exact version tag or a digest, never :latest), runs as a numeric non-root USER, installs only its own
component's optional dependency group with the project's constraints, and says what it runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.packaging.chart_support import REPO

pytestmark = pytest.mark.unit

# component folder -> its optional-dependency group in pyproject.toml
COMPONENTS = {"training_job": "train", "predictor": "serve", "operator": "operator", "drift_cronjob": "drift"}
EXTRAS = set(COMPONENTS.values()) | {"dev"}
PINNED_TAG = re.compile(r":[^:@/\s]*\d+\.\d+\.\d+[^:@/\s]*$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Instructions with line continuations joined, comments dropped and ARG defaults substituted."""
    text = re.sub(r"\\\s*\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and "=" in rest:
            # Defaults of global and stage ARGs: what a plain `docker build` uses.
            key, _, value = rest.strip().partition("=")
            args[key] = value.strip().strip('"')
        rest = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest)
        if keyword == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


def dockerfile(component: str) -> Path:
    path = REPO / component / "Dockerfile"
    assert path.is_file(), f"{component}/Dockerfile is missing"
    return path


@pytest.mark.parametrize("component", COMPONENTS)
def test_multi_stage_with_pinned_bases(component: str) -> None:
    _, stages = parse(dockerfile(component))
    assert len(stages) >= 2, "build and runtime must be separate stages"
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.base in names:
            continue
        assert not stage.base.endswith(":latest"), f"FROM {stage.base}: :latest is not a pin"
        assert PINNED_TAG.search(stage.base) or DIGEST.search(stage.base), (
            f"FROM {stage.base}: pin an exact version tag (python:3.11.11-slim-bookworm) or a digest"
        )
    # The runtime stage copies its environment from an earlier stage instead of building in place.
    final = stages[-1]
    assert any(k == "COPY" and "--from=" in v for k, v in final.instructions), "runtime stage copies no build output"


@pytest.mark.parametrize("component", COMPONENTS)
def test_runs_as_numeric_non_root_user(component: str) -> None:
    _, stages = parse(dockerfile(component))
    users = [v for k, v in stages[-1].instructions if k == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {user}: use a numeric uid so runAsNonRoot can verify it"
    assert int(user) != 0, "USER 0 is root"
    assert any(k in {"CMD", "ENTRYPOINT"} for k, _ in stages[-1].instructions), "no CMD/ENTRYPOINT"


@pytest.mark.parametrize(("component", "extra"), COMPONENTS.items())
def test_installs_only_its_own_extra_with_constraints(component: str, extra: str) -> None:
    _, stages = parse(dockerfile(component))
    installs = [v for s in stages for k, v in s.instructions if k == "RUN" and re.search(r"pip\d? install", v)]
    project_installs = [v for v in installs if re.search(r"\.\[[a-z,-]+\]", v)]
    assert project_installs, f"no `pip install .[{extra}]`"
    for command in project_installs:
        groups = {g for m in re.findall(r"\.\[([a-z,-]+)\]", command) for g in m.split(",")}
        assert groups == {extra}, f"installs {sorted(groups)}; the {component} image needs only [{extra}]"
    for command in installs:
        if re.fullmatch(r".*pip install [^;&]*--no-deps [^;&]*--no-index [^;&]*/wheels/\*\.whl.*", command):
            continue  # the project's own wheel into the runtime: nothing is resolved, nothing to constrain
        assert re.search(r"(-c|--constraint)[ =]\S*constraints\.txt", command), f"unconstrained: {command}"
    assert not any(re.search(r"\bADD\s+https?://", f"{k} {v}") for s in stages for k, v in s.instructions)


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for heavy in (".git", ".venv", "tests", "models", "*.db"):
        assert heavy in ignored
    # What `pip install .` needs must stay in the context.
    for needed in ("pyproject.toml", "constraints.txt", "mlcore", "README.md"):
        assert needed not in ignored


# The importable package each image runs (`python -m <package>`).
PACKAGES = {
    "training_job": "training_job",
    "predictor": "predictor",
    "operator": "mlpipeline_operator",
    "drift_cronjob": "drift_cronjob",
}


@pytest.mark.parametrize("component", COMPONENTS)
def test_build_context_makes_a_wheel_with_the_component(component: str, tmp_path: Path) -> None:
    """The files the build stage COPYs are enough for `pip install .`: build the project's wheel from exactly
    those files (no Docker here) and check it carries the component's package and the shared core."""
    _, stages = parse(dockerfile(component))
    context = tmp_path / "context"
    context.mkdir()
    for keyword, value in [i for stage in stages[:-1] for i in stage.instructions]:
        if keyword != "COPY" or "--from=" in value:
            continue
        *sources, _dest = value.split()
        for source in sources:
            src = REPO / source.rstrip("/")
            target = context / source.rstrip("/")
            assert src.exists(), f"COPY {source}: not in the repository"
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
        cwd=context, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    package = PACKAGES[component]
    assert f"{package}/__main__.py" in names, f"the wheel lacks {package}/__main__.py"
    assert "mlcore/config.py" in names and "mlcore/migrations/versions/0001_initial_schema.py" in names


@pytest.mark.parametrize("component", COMPONENTS)
def test_dependencies_install_before_the_code_is_copied(component: str) -> None:
    """The dependency layer (GBs for training) depends on pyproject.toml and constraints.txt only: a change to the
    code or README rebuilds the small layers after it (skaffold dev, CI), never the dependencies."""
    _, stages = parse(dockerfile(component))
    installs_extra = re.compile(r"pip install[^;]*\.\[")
    (deps,) = [s for s in stages if any(k == "RUN" and installs_extra.search(v) for k, v in s.instructions)]
    copied = [v.split()[:-1] for k, v in deps.instructions if k == "COPY"]
    assert copied == [["pyproject.toml", "constraints.txt"]], f"the dependency stage copies {copied}"
    # The runtime takes the dependencies from that stage and the project as a wheel built after it.
    runtime_copies = [v for k, v in stages[-1].instructions if k == "COPY"]
    assert f"--from={deps.name} /opt/venv /opt/venv" in runtime_copies
    assert any(v.startswith("--from=") and "/wheels" in v for v in runtime_copies)
