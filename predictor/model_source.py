"""Find the model directory to serve and prove it is a complete published version before anything loads it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mlcore.errors import MLPipelineException, ModelError
from mlcore.model_version import HF_CONFIG, ModelCard, local_card
from mlcore.storage import Manifest, fetch_version, open_version, verify_local_directory


@dataclass(frozen=True)
class ModelSource:
    directory: Path
    manifest: Manifest
    card: ModelCard
    uri: str

    @property
    def version(self) -> str | None:
        value = self.card.version or self.manifest.metadata.get("version")
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
    try:
        card = local_card(directory)
    except MLPipelineException as exc:
        raise ModelError(str(exc)) from None
    return ModelSource(directory=directory, manifest=manifest, card=card, uri=uri)


def _require_files(directory: Path) -> None:
    if not (directory / HF_CONFIG).is_file():
        raise ModelError(f"{directory} has no config.json: not a Hugging Face model directory")
    if not any(directory.glob("*.safetensors")) and not (directory / "pytorch_model.bin").is_file():
        raise ModelError(f"{directory} has no weights (*.safetensors or pytorch_model.bin)")
    if not (directory / "tokenizer.json").is_file() and not (directory / "vocab.txt").is_file():
        raise ModelError(f"{directory} has no tokenizer files (tokenizer.json or vocab.txt)")
