"""A MANIFEST.json is data read from storage: its entry paths must never place a file outside the fetch target,
whether absolute or climbing with '..' (MinIO and the local backend)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlcore.errors import ManifestError
from mlcore.storage import fetch_version, open_storage, publish_directory
from mlcore.storage.base import Storage, join_key
from mlcore.storage.manifest import MANIFEST_NAME, verify_local_directory
from tests.fixtures.services import S3Bucket

pytestmark = pytest.mark.integration

PAYLOAD = b"written where it should never be"


def plant(storage: Storage, prefix: str, entry_path: str, key: str) -> None:
    """Make the version's manifest also list `entry_path`, with the payload stored at `key` below the prefix."""
    storage.put_bytes(join_key(prefix, key), PAYLOAD)
    manifest = json.loads(storage.get_bytes(join_key(prefix, MANIFEST_NAME)))
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    manifest["files"].append({"path": entry_path, "size": len(PAYLOAD), "sha256": digest})
    manifest["created_at"] = datetime.now(UTC).isoformat()
    storage.put_bytes(join_key(prefix, MANIFEST_NAME), json.dumps(manifest).encode())


def published(storage: Storage, tmp_path: Path) -> str:
    source = tmp_path / "model"
    source.mkdir()
    (source / "config.json").write_text('{"x": 1}')
    publish_directory(storage, "models/m/1", source)
    return "models/m/1"


@pytest.fixture(params=["s3", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        return open_storage(bucket.uri())
    return open_storage((tmp_path / "store").as_uri())


@pytest.mark.parametrize("kind", ["absolute", "climbing"])
def test_manifest_entries_cannot_write_outside_the_target(storage: Storage, tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "outside" / "pwned"
    outside.parent.mkdir()
    entry_path = str(outside) if kind == "absolute" else "../../outside/pwned"
    prefix = published(storage, tmp_path)
    # An absolute path maps to a plain key (leading '/' dropped); no backend stores a '..' key, so use a plain one.
    plant(storage, prefix, entry_path, entry_path if kind == "absolute" else "outside/pwned")
    target = tmp_path / "fetch" / "a" / "b"
    with pytest.raises(ManifestError, match="not a valid manifest"):
        fetch_version(storage, prefix, target)
    assert not outside.exists()
    assert not target.exists()


def test_a_mounted_directory_with_a_symlink_out_is_refused(tmp_path: Path) -> None:
    storage = open_storage((tmp_path / "store").as_uri())
    prefix = published(storage, tmp_path)
    fetched = tmp_path / "fetched"
    fetch_version(storage, prefix, fetched)
    secret = tmp_path / "secret.txt"
    secret.write_text('{"x": 1}')
    (fetched / "config.json").unlink()
    (fetched / "config.json").symlink_to(secret)  # same bytes, but outside the directory
    with pytest.raises(ManifestError, match="resolves outside"):
        verify_local_directory(fetched)
