"""Loading a raw data set: a hub name (datasets), a local CSV/Parquet/JSONL file, or the bundled offline IMDB CSV.

Returns a frame with two columns, `text` and `label` (raw label values); cleaning and label checks come later.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pandas as pd

from mlcore.config import process_environment
from mlcore.errors import DataValidationError

logger = logging.getLogger(__name__)

OFFLINE_DATASET_RELPATH = Path("data") / "imdb_50k.csv"
HUB_DEFAULT_DATASET = "imdb"
TEXT_CANDIDATES = ("text", "review", "sentence", "content", "document")
LABEL_CANDIDATES = ("label", "sentiment", "labels", "target", "class")
FILE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".json"}
# Hub data sets often ship an unlabelled split (IMDB's 'unsupervised', label -1): it is not training data.
_UNLABELLED_SPLITS = {"unsupervised", "unlabeled", "unlabelled"}
_TRUTHY = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when the user asked for offline mode or the hub cannot be reached within a second or two."""
    env = process_environment()
    if any(v.lower() in _TRUTHY for v in (env.hf_hub_offline, env.hf_datasets_offline)):
        return True
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=2):
            return False
    except OSError:
        return True


def resolve_dataset(name: str, cache_dir: Path) -> str:
    """'auto' -> the hub's IMDB when online, else the offline CSV in the cache dir."""
    if name != "auto":
        return name
    if hub_offline():
        path = cache_dir.expanduser() / OFFLINE_DATASET_RELPATH
        if not path.is_file():
            raise DataValidationError(
                f"offline mode and no local IMDB CSV at {path}: run `bash hack/fetch-offline-assets.sh` "
                "or pass --dataset <file or hub name>"
            )
        return str(path)
    return HUB_DEFAULT_DATASET


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).suffix.lower() in FILE_SUFFIXES


def _read_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".tsv"}:
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if suffix in {".jsonl", ".json"}:
            return pd.read_json(path, lines=suffix == ".jsonl")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataValidationError(f"cannot read data set {path}: {exc}") from exc
    raise DataValidationError(f"unsupported data file {path}: use one of {sorted(FILE_SUFFIXES)}")


def _load_hub(name: str) -> pd.DataFrame:
    import datasets

    try:
        loaded = datasets.load_dataset(name)
    except Exception as exc:  # the hub raises many types (not found, offline, gated): one clear message
        raise DataValidationError(
            f"unknown data set {name!r}: not a local file and not loadable from the hub ({exc})"
        ) from exc
    if isinstance(loaded, datasets.DatasetDict):
        frames = [split.to_pandas() for key, split in loaded.items() if key not in _UNLABELLED_SPLITS]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    frame = loaded.to_pandas()
    return frame if isinstance(frame, pd.DataFrame) else pd.concat(list(frame), ignore_index=True)


def _pick_column(frame: pd.DataFrame, wanted: str | None, candidates: tuple[str, ...], what: str) -> str:
    columns = [str(c) for c in frame.columns]
    if wanted:
        if wanted not in columns:
            raise DataValidationError(f"{what} column {wanted!r} not in the data set; columns found: {columns}")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    raise DataValidationError(
        f"no {what} column found (looked for {list(candidates)}); columns found: {columns}: pass --{what}-column"
    )


def load_raw(source: str, text_column: str | None = None, label_column: str | None = None) -> pd.DataFrame:
    """The data set as a frame of raw `text` and `label` columns."""
    path = Path(source).expanduser()
    if path.is_file():
        frame = _read_file(path)
    elif _looks_like_path(source):
        raise DataValidationError(f"data set file {source!r} does not exist")
    else:
        frame = _load_hub(source)
    if frame.empty:
        raise DataValidationError(f"data set {source!r} is empty")
    text_col = _pick_column(frame, text_column, TEXT_CANDIDATES, "text")
    label_col = _pick_column(frame, label_column, LABEL_CANDIDATES, "label")
    if text_col == label_col:
        raise DataValidationError(f"text and label columns are the same column {text_col!r}")
    logger.info("loaded %d rows from %s (text=%s, label=%s)", len(frame), source, text_col, label_col)
    return pd.DataFrame({"text": frame[text_col], "label": frame[label_col]})
