"""A published model version: its layout, its typed model card and verified reads of its files.

The contract between the training job (which writes versions), the predictor, the drift job, the operator and the
demo (which read them). A version lives at `<storage>/models/<name>/<version>/`: the Hugging Face files
(config.json, model.safetensors, tokenizer files) at its root, then model_card.json, reference.parquet (text, label,
predicted_label, confidence), optional ONNX files named by the card's `runtimes`, and MANIFEST.json written last
(mlcore.storage.manifest). Readers go through this module: every file read from storage is checked against the
manifest (size and sha256), so a half-uploaded or altered version is refused the same way everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlcore.errors import DataValidationError
from mlcore.storage.base import Storage, join_key, split_uri
from mlcore.storage.manifest import read_verified
from mlcore.text import DEFAULT_HEAD_FRACTION

MODELS_ROOT = "models"
MODEL_CARD = "model_card.json"
REFERENCE = "reference.parquet"
HF_CONFIG = "config.json"


def models_prefix(model_name: str) -> str:
    """`models/<name>`: the prefix below which a model's numbered versions are published."""
    return join_key(MODELS_ROOT, model_name)


def version_prefix(model_name: str, version: str) -> str:
    """`models/<name>/<version>`."""
    return join_key(MODELS_ROOT, model_name, version)


def version_uri(base_uri: str, model_name: str, version: str) -> str:
    """The URI of a version below a storage base (`s3://b/base` -> `s3://b/base/models/<name>/<version>`)."""
    root, base = split_uri(base_uri)
    return f"{root.rstrip('/')}/{join_key(base, version_prefix(model_name, version))}"


class Truncation(BaseModel):
    model_config = ConfigDict(extra="allow")

    strategy: str = "head"
    head_fraction: float = DEFAULT_HEAD_FRACTION


class RuntimeEntry(BaseModel):
    """One way to serve the version (`torch`, `onnx`, `onnx-int8`): its file and its accuracy on the test rows."""

    model_config = ConfigDict(extra="allow")

    file: str | None = None
    accuracy: float | None = None


class ModelCard(BaseModel):
    """model_card.json. Unknown keys are kept (written back as they were read), missing ones are None."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), validate_assignment=True)

    name: str | None = None
    version: str | None = None
    labels: list[str] | dict[str, str] | None = None
    max_length: int | None = None
    # How training truncated long texts; the predictor truncates the same way.
    truncation: Truncation | None = None
    base_model: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    libraries: dict[str, str] = Field(default_factory=dict)
    git_revision: str | None = None
    mlflow_run_id: str | None = None
    created_at: str | None = None
    runtimes: dict[str, RuntimeEntry] = Field(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def head_fraction(self) -> float:
        """The head fraction the card asks for; plain head truncation (1.0) for cards that name none."""
        if self.truncation is not None and self.truncation.strategy == "head+tail":
            return float(self.truncation.head_fraction)
        return 1.0

    def label_names(self) -> list[str] | None:
        """The labels in class-id order, lower case: from a list, or an id2label-style {"0": "negative", ...}."""
        if isinstance(self.labels, list):
            return [x.lower() for x in self.labels]
        if isinstance(self.labels, dict):
            try:
                return [str(self.labels[k]).lower() for k in sorted(self.labels, key=int)]
            except (TypeError, ValueError):
                return None
        return None

    def runtime_file(self, variant: str) -> str | None:
        """The file the card names for a runtime variant (`runtimes.<variant>.file`), or None if it offers none."""
        entry = self.runtimes.get(variant)
        return entry.file if entry is not None and entry.file else None

    def runtime_accuracy(self, variant: str) -> float | None:
        entry = self.runtimes.get(variant)
        return entry.accuracy if entry is not None else None

    def to_json(self) -> str:
        """What model_card.json holds: every key that was set (None included), sorted, indented."""
        return json.dumps(self.model_dump(mode="json", exclude_unset=True), indent=2, sort_keys=True, default=str)

    @classmethod
    def parse(cls, raw: bytes | str, where: str) -> ModelCard:
        """A card from JSON; DataValidationError (naming `where`) for text that is not a JSON object of a card."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise DataValidationError(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise DataValidationError(f"{where} must hold a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DataValidationError(f"{where} is not a valid model card: {str(exc).splitlines()[0]}") from None


CardLike = ModelCard | Mapping[str, Any] | None


def as_card(card: CardLike) -> ModelCard:
    """A ModelCard from a card, a mapping with a card's keys, or None (an empty card)."""
    if isinstance(card, ModelCard):
        return card
    return ModelCard.model_validate(dict(card or {}))


def card_labels(card: CardLike) -> list[str] | None:
    """The card's labels in class-id order, lower case, or None when it names none."""
    return as_card(card).label_names()


def truncation_of(card: CardLike) -> float:
    """The head fraction a model card asks for; plain head truncation (1.0) for cards that name none."""
    return as_card(card).head_fraction


# --- verified reads ------------------------------------------------------------------------------------------


def read_card(storage: Storage, prefix: str) -> ModelCard:
    """model_card.json of the published version at `prefix`, refused (ManifestError) unless the manifest lists it
    with this size and sha256; DataValidationError when it does not parse."""
    return ModelCard.parse(read_verified(storage, prefix, MODEL_CARD), storage.uri_for(join_key(prefix, MODEL_CARD)))


def read_reference_bytes(storage: Storage, prefix: str) -> bytes:
    """reference.parquet of the published version at `prefix`, manifest-checked like `read_card`."""
    return read_verified(storage, prefix, REFERENCE)


def local_card(directory: Path) -> ModelCard:
    """The card of a version already verified on disk (fetch_version / verify_local_directory); an empty card when
    the version carries none."""
    path = directory / MODEL_CARD
    if not path.is_file():
        return ModelCard()
    return ModelCard.parse(path.read_text(), str(path))


def write_card(directory: Path, card: ModelCard) -> Path:
    path = directory / MODEL_CARD
    path.write_text(card.to_json())
    return path
