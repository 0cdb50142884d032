"""Loading local files and the clear errors for unknown data sets and columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlcore.errors import DataValidationError
from training_job.data import load_raw, resolve_dataset

pytestmark = pytest.mark.unit


@pytest.fixture
def imdb_like(tmp_path: Path) -> pd.DataFrame:
    return pd.DataFrame({"review": ["Good<br />film", "Bad film"], "sentiment": ["positive", "negative"]})


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_local_files_load_with_detected_columns(tmp_path: Path, imdb_like: pd.DataFrame, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        imdb_like.to_csv(path, index=False)
    elif suffix == ".parquet":
        imdb_like.to_parquet(path)
    else:
        imdb_like.to_json(path, orient="records", lines=True)
    frame = load_raw(str(path))
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].tolist() == ["Good<br />film", "Bad film"]


def test_unknown_column_lists_the_columns(tmp_path: Path, imdb_like: pd.DataFrame) -> None:
    path = tmp_path / "d.csv"
    imdb_like.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"text column 'body' not in the data set; columns found: \['review'"):
        load_raw(str(path), text_column="body")


def test_missing_file_and_unknown_hub_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataValidationError, match="does not exist"):
        load_raw("/no/such/data.csv")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataValidationError, match="unknown data set 'no-such-org/no-such-dataset'"):
        load_raw("no-such-org/no-such-dataset")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    with pytest.raises(DataValidationError, match="empty"):
        load_raw(str(path))


def test_auto_offline_picks_the_cached_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "imdb_50k.csv").write_text("review,sentiment\n")
    assert resolve_dataset("auto", tmp_path) == str(tmp_path / "data" / "imdb_50k.csv")
    assert resolve_dataset("imdb", tmp_path) == "imdb"
    with pytest.raises(DataValidationError, match="fetch-offline-assets"):
        resolve_dataset("auto", tmp_path / "elsewhere")
