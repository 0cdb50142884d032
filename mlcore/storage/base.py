"""The Storage interface and the factory that picks a backend from a URI."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlcore.errors import SecurityError, StorageError

_SAFE_KEY = re.compile(r"^[A-Za-z0-9._\-/=+@,]+$")


def join_key(*parts: str) -> str:
    """Join key segments with '/', dropping empty ones and stray slashes."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def check_key(key: str) -> str:
    """Refuse keys that could climb out of the storage root (`..`) or carry odd characters."""
    if not key or key.startswith("/") or not _SAFE_KEY.fullmatch(key):
        raise SecurityError(f"refused storage key {key!r}: use relative paths of [A-Za-z0-9._-/=+@,]")
    if any(part in {"", ".", ".."} for part in key.split("/")):
        raise SecurityError(f"refused storage key {key!r}: empty, '.' or '..' segments are not allowed")
    return key


class Storage(ABC):
    """Objects addressed by relative keys below a root URI."""

    root_uri: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write `data` at `key`; `content_type` is kept where the backend can serve it (S3), e.g. text/html."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def get_file(self, key: str, destination: Path) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key below `prefix` (recursively), relative to the root, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def uri_for(self, key: str) -> str:
        return f"{self.root_uri.rstrip('/')}/{check_key(key)}"


def split_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('s3://bucket', 'a/b'); 'file:///x/y' -> ('file:///x/y', '')."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return f"s3://{parsed.netloc}", parsed.path.strip("/")
    return uri, ""


def open_storage(uri: str, *, endpoint_url: str | None = None) -> Storage:
    """A Storage rooted at `uri`: s3://bucket[/prefix], file:///abs/path or a plain local path."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"storage URI {uri!r} names no bucket: expected s3://bucket[/prefix]")
        from mlcore.storage.s3 import S3Storage

        return S3Storage(parsed.netloc, parsed.path.strip("/"), endpoint_url=endpoint_url)
    if parsed.scheme in {"file", ""}:
        from mlcore.storage.local import LocalStorage

        path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        if parsed.scheme == "file" and parsed.netloc not in {"", "localhost"}:
            raise StorageError(f"storage URI {uri!r}: file:// URIs take no host (use file:///abs/path)")
        return LocalStorage(path)
    raise StorageError(f"unsupported storage URI {uri!r}: expected s3://bucket[/prefix] or file:///path")
