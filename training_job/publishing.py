"""Writing a published model version: Hugging Face files + model_card.json + reference.parquet, manifest last.

The layout and the card are mlcore.model_version's (the contract with the predictor, the drift job and the
operator); this module fills them from a training run and claims the next free version number.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcore.config import get_settings
from mlcore.errors import AlreadyPublishedError, StorageError
from mlcore.model_version import REFERENCE, ModelCard, models_prefix, version_prefix, write_card
from mlcore.storage import MANIFEST_NAME, Manifest, Storage, next_version, publish_directory
from mlcore.text import DEFAULT_HEAD_FRACTION
from training_job.cleaning import LABEL_NAMES

logger = logging.getLogger(__name__)

_LIBRARIES = ("torch", "transformers", "datasets", "scikit-learn", "mlflow", "optuna", "accelerate", "tokenizers")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_revision() -> str | None:
    """GIT_REVISION (set at image build time) or the checkout's HEAD; None outside both."""
    if get_settings().git_revision:
        return get_settings().git_revision
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def reference_frame(texts: list[str], labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """The drift job's reference: texts with their true labels and this model's predictions (label names)."""
    predicted = probabilities.argmax(axis=1)
    return pd.DataFrame(
        {
            "text": texts,
            "label": [LABEL_NAMES[int(v)] for v in labels],
            "predicted_label": [LABEL_NAMES[int(v)] for v in predicted],
            "confidence": probabilities.max(axis=1).astype("float64"),
        }
    )


def build_model_card(
    *,
    name: str,
    version: str,
    max_length: int,
    base_model: str,
    metrics: dict[str, float],
    dataset: dict[str, Any],
    params: dict[str, Any],
    evaluation: dict[str, Any],
    mlflow_run_id: str | None,
    head_fraction: float = DEFAULT_HEAD_FRACTION,
) -> ModelCard:
    return ModelCard.model_validate(
        {
            "name": name,
            "version": version,
            "labels": list(LABEL_NAMES),
            "max_length": max_length,
            # The predictor reads this to truncate long texts the way training did.
            "truncation": {"strategy": "head+tail", "head_fraction": head_fraction},
            "base_model": base_model,
            "metrics": {k: (None if v != v else v) for k, v in metrics.items()},  # NaN -> null
            "dataset": dataset,
            "evaluation": evaluation,
            "params": params,
            "libraries": library_versions(),
            "git_revision": git_revision(),
            "mlflow_run_id": mlflow_run_id,
            "created_at": datetime.now(UTC).isoformat(),
        }
    )


def write_model_dir(model: Any, tokenizer: Any, card: ModelCard, reference: pd.DataFrame, dest: Path) -> Path:
    """Save the HF files, the card and the reference sample into `dest` (emptied first)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    write_card(dest, card)
    reference.to_parquet(dest / REFERENCE, index=False)
    return dest


def publish_model(storage: Storage, model_name: str, directory: Path, card: ModelCard) -> tuple[str, Manifest]:
    """Publish `directory` as the next version (files, then MANIFEST.json); returns (version, manifest).

    The card inside the directory is rewritten with the version actually taken. Two jobs racing for the same number:
    the loser sees the winner's manifest and moves to the next number.
    """
    base = models_prefix(model_name)
    for _attempt in range(5):
        version = next_version(storage, base)
        card.version = version
        write_card(directory, card)
        try:
            manifest = publish_directory(
                storage,
                version_prefix(model_name, version),
                directory,
                metadata={"name": model_name, "version": version},
            )
        except AlreadyPublishedError:
            continue
        logger.info("published %s", storage.uri_for(version_prefix(model_name, version)))
        return version, manifest
    raise StorageError(f"could not claim a free version below {storage.uri_for(base)} after 5 attempts")


def copy_local(directory: Path, manifest: Manifest, final_dir: Path) -> Path:
    """Replace `final_dir` with the published files and their manifest (verify_local_directory accepts it)."""
    final_dir = final_dir.resolve()
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}."))
    try:
        shutil.copytree(directory, staging, dirs_exist_ok=True)
        (staging / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
        if final_dir.exists():
            shutil.rmtree(final_dir)
        staging.rename(final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final_dir
