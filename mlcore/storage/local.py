"""file:// storage: a directory tree; every write lands through a temp file and a rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mlcore.errors import NotFoundError, StorageError
from mlcore.storage.base import Storage, check_key


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.root_uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_atomically(self, key: str, writer: object) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as handle:
                    writer(handle)  # type: ignore[operator]
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write {self.uri_for(key)}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._write_atomically(key, lambda handle: handle.write(data))

    def put_file(self, key: str, path: Path) -> None:
        def copy(handle: object) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handle)  # type: ignore[arg-type]

        self._write_atomically(key, copy)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"not found: {self.uri_for(key)}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.uri_for(key)}: {exc}") from exc

    def get_file(self, key: str, destination: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise NotFoundError(f"not found: {self.uri_for(key)}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"not found: {self.uri_for(key)}") from None

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        if base.is_file():
            return [prefix]
        keys = [
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.endswith(".part")
        ]
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
