"""Publishing a model version and mirroring checkpoints, on local file storage (no services)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlcore.errors import ManifestError
from mlcore.model_version import ModelCard
from mlcore.storage import list_versions, open_storage, verify_local_directory, verify_version
from mlcore.text import head_tail
from training_job.checkpoints import CheckpointStore
from training_job.publishing import copy_local, publish_model, reference_frame

pytestmark = pytest.mark.unit


def make_dir(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_publish_takes_the_next_version_and_writes_the_card(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "store"))
    model = make_dir(tmp_path / "m", {"config.json": "{}", "model.safetensors": "w"})
    card = ModelCard(name="s")
    assert publish_model(storage, "s", model, card)[0] == "1"
    version, manifest = publish_model(storage, "s", model, card)
    assert version == "2" and card.version == "2"
    assert json.loads(storage.get_bytes("models/s/2/model_card.json"))["version"] == "2"
    assert manifest.metadata == {"name": "s", "version": "2"}
    assert list_versions(storage, "models/s") == ["1", "2"]

    final = copy_local(model, manifest, tmp_path / "models" / "final")
    verify_local_directory(final)


def test_a_version_without_manifest_is_refused(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "store"))
    storage.put_bytes("models/s/1/config.json", b"{}")  # what a dead upload leaves behind
    with pytest.raises(ManifestError):
        verify_version(storage, "models/s/1")
    model = make_dir(tmp_path / "m", {"config.json": "{}"})
    assert publish_model(storage, "s", model, ModelCard())[0] == "2"


def test_reference_frame_uses_label_names() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    frame = reference_frame(["a", "b", "c"], np.array([0, 1, 0]), probabilities)
    assert frame.to_dict("list") == {
        "text": ["a", "b", "c"],
        "label": ["negative", "positive", "negative"],
        "predicted_label": ["negative", "positive", "positive"],
        "confidence": [0.9, 0.8, 0.6],
    }


def test_checkpoints_mirror_restore_and_clear(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "store"))
    store = CheckpointStore(storage, "checkpoints/s/key")
    local = tmp_path / "run" / "checkpoints"
    state = {"best_model_checkpoint": "/elsewhere/checkpoints/checkpoint-2"}
    make_dir(local / "checkpoint-2", {"trainer_state.json": json.dumps(state), "w": "2"})
    store.push(local / "checkpoint-2")
    make_dir(local / "checkpoint-4", {"trainer_state.json": json.dumps(state), "w": "4"})
    store.push(local / "checkpoint-4")
    assert store.published() == ["checkpoint-2", "checkpoint-4"]

    # The Trainer rotated checkpoint-2 away locally: the remote copy follows.
    for item in (local / "checkpoint-2").iterdir():
        item.unlink()
    (local / "checkpoint-2").rmdir()
    make_dir(local / "checkpoint-6", {"trainer_state.json": json.dumps(state), "w": "6"})
    store.push(local / "checkpoint-6")
    assert store.published() == ["checkpoint-4", "checkpoint-6"]

    # A half-uploaded checkpoint (no manifest) is never restored.
    storage.put_bytes("checkpoints/s/key/checkpoint-8/w", b"partial")
    elsewhere = tmp_path / "new-pod" / "checkpoints"
    latest = store.restore(elsewhere)
    assert latest == elsewhere / "checkpoint-6"
    assert (latest / "w").read_text() == "6"
    restored_state = json.loads((latest / "trainer_state.json").read_text())
    assert restored_state["best_model_checkpoint"] == str(elsewhere / "checkpoint-2")

    store.clear()
    assert store.published() == [] and storage.list("checkpoints/s/key") == []


def test_restore_with_nothing_saved_returns_none(tmp_path: Path) -> None:
    store = CheckpointStore(open_storage(str(tmp_path / "store")), "checkpoints/s/none")
    assert store.restore(tmp_path / "ck") is None


@pytest.mark.parametrize(
    ("length", "budget", "expected"),
    [(5, 10, list(range(5))), (10, 4, [0, 7, 8, 9]), (10, 8, [0, 1, 4, 5, 6, 7, 8, 9])],
)
def test_head_tail_keeps_start_and_end(length: int, budget: int, expected: list[int]) -> None:
    assert head_tail(list(range(length)), budget, 0.25) == expected
