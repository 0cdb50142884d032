"""The reference side: the sample published with the model version, or a window of earlier logs."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from drift_cronjob.db import Target, as_utc, parse_duration
from drift_cronjob.features import feature_frame, normalize_labels
from mlcore.config import Settings
from mlcore.errors import ConfigurationError, DataValidationError, ManifestError
from mlcore.storage import Storage, join_key, open_storage, open_version, read_manifest, split_uri

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference.parquet"
MODEL_CARD_FILE = "model_card.json"
REFERENCE_COLUMNS = ("text", "predicted_label", "confidence")


def version_uri(target: Target, core: Settings) -> str:
    """Where the served model version lives: the operator's record, else the standard layout under the base."""
    if target.storage_uri:
        return target.storage_uri
    root, base = split_uri(core.effective_storage_uri)
    return f"{root.rstrip('/')}/{join_key(base, 'models', target.model_name, target.model_version)}"


def open_model_version(target: Target, core: Settings) -> tuple[Storage, str]:
    uri = version_uri(target, core)
    return open_version(uri, endpoint_url=core.effective_s3_endpoint)


def read_verified(storage: Storage, prefix: str, name: str) -> bytes:
    """One file of a published version, refused unless the manifest lists it with this size and sha256."""
    manifest = read_manifest(storage, prefix)
    entry = manifest.entry(name)
    key = join_key(prefix, name)
    if entry is None:
        raise ManifestError(f"{storage.uri_for(key)} is not listed in the version's manifest")
    data = storage.get_bytes(key)
    if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise ManifestError(f"{storage.uri_for(key)} does not match its manifest checksum")
    return data


@dataclass
class ModelReference:
    frame: pd.DataFrame
    texts: list[str]
    card: dict[str, Any]
    uri: str


def load_model_card(target: Target, core: Settings) -> dict[str, Any]:
    storage, prefix = open_model_version(target, core)
    try:
        card = json.loads(read_verified(storage, prefix, MODEL_CARD_FILE))
    except ValueError as exc:
        raise DataValidationError(f"{storage.uri_for(join_key(prefix, MODEL_CARD_FILE))} is not JSON: {exc}") from None
    if not isinstance(card, dict):
        raise DataValidationError(f"{storage.uri_for(join_key(prefix, MODEL_CARD_FILE))} is not a JSON object")
    return card


def card_labels(card: dict[str, Any]) -> list[str] | None:
    labels = card.get("labels")
    if isinstance(labels, list) and all(isinstance(x, str) for x in labels):
        return [x.lower() for x in labels]
    if isinstance(labels, dict):  # id2label style {"0": "negative", ...}
        try:
            return [str(labels[k]).lower() for k in sorted(labels, key=lambda k: int(k))]
        except (TypeError, ValueError):
            return None
    return None


def load_model_reference(
    target: Target, core: Settings, *, max_rows: int, seed: int, descriptors: bool = False
) -> ModelReference:
    """reference.parquet and model_card.json of the served version, manifest-verified; subsampled to max_rows."""
    storage, prefix = open_model_version(target, core)
    uri = storage.uri_for(join_key(prefix, REFERENCE_FILE))
    card = load_model_card(target, core)
    raw = read_verified(storage, prefix, REFERENCE_FILE)
    try:
        table = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise DataValidationError(f"{uri} is not a readable parquet file: {exc}") from None
    missing = [c for c in REFERENCE_COLUMNS if c not in table.columns]
    if missing:
        raise DataValidationError(f"{uri} lacks the columns {missing} (has {list(table.columns)})")
    table = table.dropna(subset=list(REFERENCE_COLUMNS))
    if table.empty:
        raise DataValidationError(f"{uri} holds no usable rows")
    if len(table) > max_rows:
        table = table.sample(n=max_rows, random_state=seed)
    texts = [str(t) for t in table["text"]]
    frame = feature_frame(
        texts,
        normalize_labels(table["predicted_label"], card_labels(card)),
        table["confidence"].astype(float).tolist(),
        descriptors=descriptors,
    )
    log.info("reference sample %s: %d rows", uri, len(frame))
    return ModelReference(frame, texts, card, uri)


@dataclass(frozen=True)
class ReferenceWindow:
    start: datetime
    end: datetime


def parse_reference_window(spec: str, current_start: datetime) -> ReferenceWindow:
    """'7d' = the 7 days right before the current window; 'START/END' = an ISO 8601 interval (UTC if no zone)."""
    if "/" in spec:
        left, _, right = spec.partition("/")
        try:
            start, end = as_utc(datetime.fromisoformat(left.strip())), as_utc(datetime.fromisoformat(right.strip()))
        except ValueError:
            raise ConfigurationError(
                f"invalid reference window {spec!r}: expected START/END in ISO 8601 or a duration such as 7d"
            ) from None
    else:
        length: timedelta = parse_duration(spec)
        start, end = current_start - length, current_start
    if start >= end:
        raise ConfigurationError(f"invalid reference window {spec!r}: its start is not before its end")
    return ReferenceWindow(start, end)


def storage_for_reports(core: Settings) -> Storage:
    return open_storage(core.effective_storage_uri, endpoint_url=core.effective_s3_endpoint)
