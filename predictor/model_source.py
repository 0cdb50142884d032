"""Find the model directory to serve and prove it is a complete published version before anything loads it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcore.errors import MLPipelineException, ModelError
from mlcore.storage import Manifest, fetch_version, open_version, verify_local_directory


@dataclass(frozen=True)
class ModelSource:
    directory: Path
    manifest: Manifest
    card: dict[str, Any]
    uri: str

    @property
    def version(self) -> str | None:
        value = self.card.get("version") or self.manifest.metadata.get("version")
        return str(value) if value is not None else None


def resolve_model(storage_uri: str | None, model_dir: Path | None, download_root: Path) -> ModelSource:
    """A verified local copy of the version: a mounted dir is checked in place, a URI is fetched (sha256-checked)."""
    try:
        if model_dir is not None:
            directory = Path(model_dir)
            if not directory.is_dir():
                raise ModelError(f"model directory {directory} does not exist")
            manifest = verify_local_directory(directory)
            uri = directory.resolve().as_uri()
        else:
            assert storage_uri is not None
            storage, prefix = open_version(storage_uri)
            directory = download_root / hashlib.sha256(storage_uri.encode()).hexdigest()[:16]
            manifest = fetch_version(storage, prefix, directory)
            uri = storage_uri
    except ModelError:
        raise
    except MLPipelineException as exc:
        where = model_dir or storage_uri
        raise ModelError(f"cannot serve {where}: {exc}") from exc
    _require_files(directory)
    return ModelSource(directory=directory, manifest=manifest, card=_read_card(directory), uri=uri)


def _require_files(directory: Path) -> None:
    if not (directory / "config.json").is_file():
        raise ModelError(f"{directory} has no config.json: not a Hugging Face model directory")
    if not any(directory.glob("*.safetensors")) and not (directory / "pytorch_model.bin").is_file():
        raise ModelError(f"{directory} has no weights (*.safetensors or pytorch_model.bin)")
    if not (directory / "tokenizer.json").is_file() and not (directory / "vocab.txt").is_file():
        raise ModelError(f"{directory} has no tokenizer files (tokenizer.json or vocab.txt)")


def _read_card(directory: Path) -> dict[str, Any]:
    path = directory / "model_card.json"
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text())
    except ValueError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path} must hold a JSON object")
    return card
