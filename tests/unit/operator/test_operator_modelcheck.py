"""A model version is served only when its prefix is a complete published version (file:// here)."""

import pytest

from mlcore.storage import open_storage, publish_directory
from mlpipeline_operator.modelcheck import model_problem

pytestmark = pytest.mark.unit


def test_published_version_passes_and_half_uploads_are_refused(tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    (source / "config.json").write_text("{}")
    root = tmp_path / "storage"
    storage = open_storage(root.as_uri())
    publish_directory(storage, "models/sentiment/1", source)
    assert model_problem(f"{root.as_uri()}/models/sentiment/1") is None

    storage.put_file("models/sentiment/2/config.json", source / "config.json")  # no manifest: upload unfinished
    problem = model_problem(f"{root.as_uri()}/models/sentiment/2")
    assert problem is not None and "MANIFEST.json" in problem

    (root / "models/sentiment/1/config.json").unlink()
    assert "missing" in model_problem(f"{root.as_uri()}/models/sentiment/1")


def test_other_schemes_are_not_checked():
    assert model_problem("gs://bucket/models/sentiment/1") is None
    assert model_problem("pvc://claim/models/1") is None
