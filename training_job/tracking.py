"""MLflow: the experiment, runs (parent + nested trials), metrics, artifacts, the registry and its aliases.

The model is logged as the run's `model/` artifacts (the same Hugging Face files that are published to storage,
model_card.json included) and registered from there; a new version gets alias `challenger` and takes `champion`
only when it beats the current champion on the same test split. Works against a tracking server (Postgres backend,
S3 artifacts through --serve-artifacts) and against a local sqlite store.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
MODEL_ARTIFACT_PATH = "model"
_PARAM_MAX = 6000
_READY = "READY"  # ModelVersionStatus names, as the registry reports them
_FAILED = "FAILED_REGISTRATION"


@dataclass(frozen=True)
class ChampionDecision:
    promoted: bool
    reason: str
    challenger_version: str
    challenger_accuracy: float
    champion_version: str | None
    champion_accuracy: float | None
    compared_on: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        try:
            self.experiment_id = mlflow.set_experiment(experiment).experiment_id
        except MlflowException as exc:
            from mlcore.errors import ConfigurationError

            raise ConfigurationError(f"MLflow at {tracking_uri} refused experiment {experiment!r}: {exc}") from exc

    @contextmanager
    def run(self, name: str, *, nested: bool = False, tags: dict[str, str] | None = None) -> Iterator[str]:
        """An MLflow run (nested under the active one when asked); yields its id; FAILED if the body raises."""
        with mlflow.start_run(run_name=name, nested=nested, tags=tags or {}) as active:
            yield active.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        mlflow.log_params({k: str(v)[:_PARAM_MAX] for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        if finite:
            mlflow.log_metrics(finite, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifacts(self, directory: Path, artifact_path: str | None = None) -> None:
        mlflow.log_artifacts(str(directory), artifact_path)

    def log_dict(self, data: dict[str, Any], name: str) -> None:
        mlflow.log_dict(data, name)

    # --- registry ---
    def register(self, run_id: str, name: str, tags: dict[str, str]) -> str:
        """Register the run's model/ artifacts as a new version of `name`, alias challenger; returns the version."""
        try:
            self.client.create_registered_model(name, description="Binary sentiment classifier (ml-pipeline)")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{self.client.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT_PATH}"
        version = self.client.create_model_version(name, source=source, run_id=run_id, tags=tags)
        self._wait_ready(name, version.version)
        self.client.set_registered_model_alias(name, CHALLENGER, version.version)
        logger.info("registered %s version %s (alias %s)", name, version.version, CHALLENGER)
        return str(version.version)

    def _wait_ready(self, name: str, version: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.client.get_model_version(name, version).status
            if status == _READY:
                return
            if status == _FAILED:
                raise MlflowException(f"registration of {name} version {version} failed")
            if time.monotonic() > deadline:
                raise MlflowException(f"{name} version {version} not ready after {timeout_s:.0f}s ({status})")
            time.sleep(0.5)

    def current_champion(self, name: str) -> Any | None:
        try:
            return self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return None

    def set_champion(self, name: str, version: str, why: str) -> None:
        """Move alias champion to `version` (idempotent), saying why on the version."""
        self.client.set_registered_model_alias(name, CHAMPION, version)
        self.client.set_model_version_tag(name, version, "champion_by", why)

    def download_version(self, source: str) -> Path:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tempfile.mkdtemp(prefix="mlp-")))

    def decide_champion(
        self,
        name: str,
        version: str,
        accuracy: float,
        split_hash: str,
        rescore: Callable[[Path], float],
        take_alias: bool = True,
    ) -> ChampionDecision:
        """Promote `version` to champion when there is none or it has a higher test accuracy on this split.

        The champion's own figure is used when it was measured on the same test split (same hash); otherwise the
        champion is downloaded and scored again on this run's test split, so the comparison is always like for like.
        With `take_alias` False (a run of the operator's retraining loop) the verdict is recorded and the alias left
        where it is: the loop moves it only once the candidate is promoted (`set_champion`), so a candidate its
        rollout rolls back never holds it.
        """
        champion = self.current_champion(name)
        if champion is None:
            decision = ChampionDecision(True, "no champion yet", version, accuracy, None, None, split_hash)
        else:
            tags = champion.tags or {}
            if tags.get("test_split_hash") == split_hash and "test_accuracy" in tags:
                champion_accuracy = float(tags["test_accuracy"])
                basis = "recorded accuracy on the same test split"
            else:
                champion_accuracy = rescore(self.download_version(champion.source))
                basis = "champion re-scored on this test split"
            promoted = accuracy > champion_accuracy
            verdict = "beats" if promoted else "does not beat"
            decision = ChampionDecision(
                promoted,
                f"challenger {accuracy:.4f} {verdict} champion v{champion.version} {champion_accuracy:.4f} ({basis})",
                version,
                accuracy,
                str(champion.version),
                champion_accuracy,
                split_hash,
            )
        if decision.promoted and take_alias:
            self.client.set_registered_model_alias(name, CHAMPION, version)
        self.client.set_model_version_tag(name, version, "champion_decision", decision.reason)
        self.set_tags({"champion_decision": decision.reason, "promoted_to_champion": decision.promoted and take_alias})
        self.log_dict(decision.as_dict(), "champion_decision.json")
        logger.info("champion decision for %s v%s: %s", name, version, decision.reason)
        return decision
