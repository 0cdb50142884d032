"""One storage interface over s3:// and file://, with atomic, manifest-checked publishing of versioned prefixes."""

from mlcore.storage.base import Storage, join_key, open_storage, split_uri
from mlcore.storage.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    fetch_version,
    list_versions,
    next_version,
    open_version,
    publish_directory,
    read_manifest,
    read_verified,
    verify_local_directory,
    verify_version,
)

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "ManifestEntry",
    "Storage",
    "fetch_version",
    "join_key",
    "list_versions",
    "next_version",
    "open_storage",
    "open_version",
    "publish_directory",
    "read_manifest",
    "read_verified",
    "split_uri",
    "verify_local_directory",
    "verify_version",
]
