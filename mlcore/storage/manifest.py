"""Atomic publishing of versioned prefixes: files first, MANIFEST.json last; readers trust only the manifest.

A prefix without a manifest, with a manifest that does not parse, or whose files differ from it in size or
sha256, is refused with ManifestError. So an upload that dies half-way leaves nothing a reader accepts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from mlcore.errors import AlreadyPublishedError, ManifestError, NotFoundError, SecurityError, StorageError
from mlcore.storage.base import Storage, check_key, join_key, open_storage, split_uri

MANIFEST_NAME = "MANIFEST.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


class ManifestEntry(BaseModel):
    path: str = Field(min_length=1)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _relative_key(cls, value: str) -> str:
        # A manifest is data from storage: an absolute or climbing path would write outside the target directory.
        try:
            check_key(value)
        except SecurityError as exc:
            raise ValueError(str(exc)) from None
        if value == MANIFEST_NAME:
            raise ValueError(f"a manifest cannot list {MANIFEST_NAME} itself")
        return value


def inside(root: Path, relative: str) -> Path:
    """`root / relative`, refused (ManifestError) unless it resolves inside `root` (symlinks followed)."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ManifestError(f"manifest entry {relative!r} resolves outside {root}")
    return target


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    created_at: datetime
    files: list[ManifestEntry]
    metadata: dict[str, Any] = Field(default_factory=dict)

    def entry(self, path: str) -> ManifestEntry | None:
        return next((f for f in self.files if f.path == path), None)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(path: Path, entry: ManifestEntry) -> bool:
    return path.stat().st_size == entry.size and sha256_file(path) == entry.sha256


def _matches_bytes(data: bytes, entry: ManifestEntry) -> bool:
    return len(data) == entry.size and hashlib.sha256(data).hexdigest() == entry.sha256


def _local_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise StorageError(f"cannot publish {directory}: not a directory")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    if not files:
        raise StorageError(f"cannot publish {directory}: it holds no files")
    return files


def publish_directory(
    storage: Storage,
    prefix: str,
    directory: Path,
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Upload every file of `directory` below `prefix`, then the manifest: the version exists only then."""
    manifest_key = join_key(prefix, MANIFEST_NAME)
    if storage.exists(manifest_key) and not overwrite:
        raise AlreadyPublishedError(f"{storage.uri_for(prefix)} is already published; versions are immutable")
    if overwrite:
        # Withdraw the old manifest first, so readers never pair it with half-replaced files.
        storage.delete(manifest_key)
    entries = []
    for path in _local_files(directory):
        relative = path.relative_to(directory).as_posix()
        entries.append(ManifestEntry(path=relative, size=path.stat().st_size, sha256=sha256_file(path)))
        storage.put_file(join_key(prefix, relative), path)
    manifest = Manifest(created_at=datetime.now(UTC), files=entries, metadata=metadata or {})
    storage.put_bytes(manifest_key, manifest.model_dump_json(indent=2).encode())
    return manifest


def read_manifest(storage: Storage, prefix: str) -> Manifest:
    key = join_key(prefix, MANIFEST_NAME)
    try:
        raw = storage.get_bytes(key)
    except NotFoundError:
        raise ManifestError(
            f"{storage.uri_for(prefix) if prefix else storage.root_uri} has no {MANIFEST_NAME}: "
            "not a published version (an upload may have failed half-way)"
        ) from None
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ManifestError(f"{storage.uri_for(key)} is not a valid manifest: {str(exc).splitlines()[0]}") from None
    if manifest.format_version != FORMAT_VERSION:
        raise ManifestError(f"{storage.uri_for(key)}: unsupported manifest format {manifest.format_version}")
    return manifest


def verify_version(storage: Storage, prefix: str) -> Manifest:
    """Cheap check before use: the manifest parses and every file it lists is present with its size."""
    manifest = read_manifest(storage, prefix)
    for entry in manifest.files:
        key = join_key(prefix, entry.path)
        if not storage.exists(key):
            raise ManifestError(f"{storage.uri_for(key)} is listed in the manifest but missing")
        actual = storage.size(key)
        if actual != entry.size:
            raise ManifestError(f"{storage.uri_for(key)} has {actual} bytes, the manifest says {entry.size}")
    return manifest


def read_verified(storage: Storage, prefix: str, name: str) -> bytes:
    """One file of a published version, refused unless the manifest lists it with this size and sha256."""
    manifest = read_manifest(storage, prefix)
    entry = manifest.entry(name)
    key = join_key(prefix, name)
    if entry is None:
        raise ManifestError(f"{storage.uri_for(key)} is not listed in the version's manifest")
    data = storage.get_bytes(key)
    if not _matches_bytes(data, entry):
        raise ManifestError(f"{storage.uri_for(key)} does not match its manifest checksum")
    return data


def fetch_version(storage: Storage, prefix: str, destination: Path) -> Manifest:
    """Download a published version into `destination`, checking every sha256; all or nothing."""
    manifest = read_manifest(storage, prefix)
    destination = destination.resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}."))
    try:
        for entry in manifest.files:
            target = inside(staging, entry.path)
            storage.get_file(join_key(prefix, entry.path), target)
            if not _matches(target, entry):
                raise ManifestError(f"{storage.uri_for(join_key(prefix, entry.path))} does not match its checksum")
        (staging / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def verify_local_directory(directory: Path) -> Manifest:
    """Check a directory that was fetched or mounted (e.g. KServe's /mnt/models) against its manifest."""
    storage = open_storage(str(directory))
    manifest = read_manifest(storage, "")
    for entry in manifest.files:
        path = inside(directory, entry.path)
        if not path.is_file():
            raise ManifestError(f"{path} is listed in the manifest but missing")
        if not _matches(path, entry):
            raise ManifestError(f"{path} does not match its manifest checksum")
    return manifest


def _numeric_versions(storage: Storage, base_prefix: str) -> dict[int, bool]:
    """version number -> whether it has a manifest, for every numeric child of `base_prefix`."""
    found: dict[int, bool] = {}
    depth = len([p for p in base_prefix.split("/") if p])
    for key in storage.list(base_prefix):
        parts = key.split("/")
        if len(parts) > depth + 1 and parts[depth].isdigit():
            number = int(parts[depth])
            found[number] = found.get(number, False) or (len(parts) == depth + 2 and parts[depth + 1] == MANIFEST_NAME)
    return found


def list_versions(storage: Storage, base_prefix: str) -> list[str]:
    """Published (manifest-bearing) versions below `base_prefix`, oldest first."""
    return [str(n) for n, published in sorted(_numeric_versions(storage, base_prefix).items()) if published]


def next_version(storage: Storage, base_prefix: str) -> str:
    """One past every version ever started, published or not, so a failed upload is never reused."""
    numbers = _numeric_versions(storage, base_prefix)
    return str(max(numbers, default=0) + 1)


def open_version(uri: str, *, endpoint_url: str | None = None) -> tuple[Storage, str]:
    """'s3://b/models/x/3' -> (storage at s3://b, 'models/x/3'); 'file:///p/x/3' -> (storage at it, '')."""
    root, prefix = split_uri(uri)
    return open_storage(root, endpoint_url=endpoint_url), prefix
