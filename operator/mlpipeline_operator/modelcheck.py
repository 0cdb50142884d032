"""Refuse a model version whose storage prefix is not a complete published version (mlcore's manifest check)."""

from __future__ import annotations

from mlcore.errors import StorageError
from mlcore.storage import open_version, verify_version

CHECKED_SCHEMES = ("s3://", "file://")


def model_problem(storage_uri: str, endpoint_url: str | None = None) -> str | None:
    """None when the prefix holds a manifest whose files are all present; else why not.

    Only s3:// and file:// are checked (the schemes mlcore reads); gs://, pvc://, http(s):// and hf:// pass.
    """
    if not storage_uri.startswith(CHECKED_SCHEMES):
        return None
    try:
        storage, prefix = open_version(storage_uri, endpoint_url=endpoint_url)
        verify_version(storage, prefix)
    except StorageError as exc:  # ManifestError included
        return str(exc)
    return None
