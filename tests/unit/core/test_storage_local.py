import json
from pathlib import Path

import pytest

from mlcore.errors import ManifestError, SecurityError, StorageError
from mlcore.storage import (
    fetch_version,
    list_versions,
    next_version,
    open_storage,
    open_version,
    publish_directory,
    read_manifest,
    verify_local_directory,
    verify_version,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text('{"a": 1}')
    (source / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    return source


def test_publish_then_fetch_roundtrip(tmp_path, model_dir):
    storage = open_storage((tmp_path / "store").as_uri())
    manifest = publish_directory(storage, "models/m/1", model_dir, metadata={"accuracy": 0.9})
    assert {e.path for e in manifest.files} == {"config.json", "sub/weights.bin"}
    assert verify_version(storage, "models/m/1").metadata == {"accuracy": 0.9}
    fetched = fetch_version(storage, "models/m/1", tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 1000
    assert verify_local_directory(tmp_path / "out") == fetched


def test_versions_are_immutable_and_numbered(tmp_path, model_dir):
    storage = open_storage(str(tmp_path / "store"))
    assert next_version(storage, "models/m") == "1"
    publish_directory(storage, "models/m/1", model_dir)
    with pytest.raises(StorageError, match="immutable"):
        publish_directory(storage, "models/m/1", model_dir)
    storage.put_bytes("models/m/2/partial.bin", b"x")  # an upload that died: no manifest
    assert list_versions(storage, "models/m") == ["1"]
    assert next_version(storage, "models/m") == "3"


def test_missing_manifest_is_refused(tmp_path, model_dir):
    storage = open_storage(str(tmp_path / "store"))
    storage.put_file("models/m/1/config.json", model_dir / "config.json")
    with pytest.raises(ManifestError, match=r"no MANIFEST\.json"):
        verify_version(storage, "models/m/1")
    with pytest.raises(ManifestError):
        fetch_version(storage, "models/m/1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_manifest_or_files_are_refused(tmp_path, model_dir):
    storage = open_storage(str(tmp_path / "store"))
    publish_directory(storage, "v/1", model_dir)
    storage.put_bytes("v/1/sub/weights.bin", b"tampered")
    with pytest.raises(ManifestError, match="bytes"):
        verify_version(storage, "v/1")
    publish_directory(storage, "v/2", model_dir)
    storage.put_bytes("v/2/config.json", b'{"a": 2}')  # same size, other content
    with pytest.raises(ManifestError, match="checksum"):
        fetch_version(storage, "v/2", tmp_path / "out")
    storage.put_bytes("v/3/MANIFEST.json", b"{not json")
    with pytest.raises(ManifestError, match="not a valid manifest"):
        read_manifest(storage, "v/3")
    storage.put_bytes("v/4/MANIFEST.json", json.dumps({"created_at": "2026-01-01T00:00:00Z"}).encode())
    with pytest.raises(ManifestError, match="not a valid manifest"):
        read_manifest(storage, "v/4")


def test_keys_cannot_escape_the_root(tmp_path):
    storage = open_storage(str(tmp_path / "store"))
    for key in ["../etc/passwd", "/abs", "a//b", "a/./b", "a b"]:
        with pytest.raises(SecurityError):
            storage.put_bytes(key, b"x")


def test_local_storage_operations(tmp_path):
    storage = open_storage(str(tmp_path / "store"))
    storage.put_bytes("a/b.txt", b"hello")
    assert storage.exists("a/b.txt") and storage.size("a/b.txt") == 5
    assert storage.list() == ["a/b.txt"] and storage.list("a") == ["a/b.txt"] and storage.list("zzz") == []
    with pytest.raises(StorageError, match="not found"):
        storage.get_bytes("a/missing")
    storage.delete("a/b.txt")
    assert not storage.exists("a/b.txt")


def test_uri_parsing(tmp_path):
    storage, prefix = open_version("s3://bucket/models/m/3", endpoint_url="http://127.0.0.1:1")
    assert (storage.root_uri, prefix) == ("s3://bucket", "models/m/3")
    storage, prefix = open_version((tmp_path / "v").as_uri())
    assert prefix == "" and storage.root_uri == (tmp_path / "v").as_uri()
    with pytest.raises(StorageError, match="unsupported"):
        open_storage("gs://bucket/x")
    with pytest.raises(StorageError, match="no bucket"):
        open_storage("s3:///x")
