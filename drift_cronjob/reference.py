"""The reference side: the sample published with the model version, or a window of earlier logs."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from drift_cronjob.db import Target
from drift_cronjob.features import feature_frame, normalize_labels
from mlcore import model_version
from mlcore.config import Settings
from mlcore.errors import ConfigurationError, DataValidationError
from mlcore.model_version import ModelCard, read_card, read_reference_bytes
from mlcore.storage import Storage, join_key, open_storage, open_version
from mlcore.timeutil import as_utc, parse_duration

log = logging.getLogger(__name__)

# The drift job compares the predictions; the true label is not needed.
REFERENCE_COLUMNS = ("text", "predicted_label", "confidence")


def version_uri(target: Target, core: Settings) -> str:
    """Where the served model version lives: the operator's record, else the standard layout under the base."""
    if target.storage_uri:
        return target.storage_uri
    return model_version.version_uri(core.effective_storage_uri, target.model_name, target.model_version)


def open_model_version(target: Target, core: Settings) -> tuple[Storage, str]:
    uri = version_uri(target, core)
    return open_version(uri, endpoint_url=core.effective_s3_endpoint)


@dataclass
class ModelReference:
    frame: pd.DataFrame
    texts: list[str]
    card: ModelCard
    uri: str


def load_model_card(target: Target, core: Settings) -> ModelCard:
    storage, prefix = open_model_version(target, core)
    return read_card(storage, prefix)


def load_model_reference(
    target: Target, core: Settings, *, max_rows: int, seed: int, descriptors: bool = False
) -> ModelReference:
    """reference.parquet and model_card.json of the served version, manifest-verified; subsampled to max_rows."""
    storage, prefix = open_model_version(target, core)
    uri = storage.uri_for(join_key(prefix, model_version.REFERENCE))
    card = read_card(storage, prefix)
    raw = read_reference_bytes(storage, prefix)
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
        normalize_labels(table["predicted_label"], card.label_names()),
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
