"""The exception hierarchy every component raises and catches."""

from __future__ import annotations


class MLPipelineException(Exception):  # noqa: N818 - the name is part of the public contract
    """Base of every error raised on purpose by ml-pipeline."""


class ConfigurationError(MLPipelineException):
    """A setting is missing or invalid; the message names the variable and what is expected."""


class SecurityError(MLPipelineException):
    """Input that could escape its intended use (an identifier, a path) was refused."""


class DatabaseError(MLPipelineException):
    """The database could not be reached or refused an operation."""


class StorageError(MLPipelineException):
    """Object storage (s3:// or file://) failed or holds something unexpected."""


class NotFoundError(StorageError):
    """The key (or bucket) does not exist in storage; raised by every backend, caught by type, never by message."""


class AlreadyPublishedError(StorageError):
    """The prefix already has a manifest: published versions are immutable, take the next number."""


class ManifestError(StorageError):
    """A published prefix has no manifest, or its files do not match it: readers must refuse it."""


class ModelError(MLPipelineException):
    """A model could not be loaded, or is not what the caller expects."""


class DataValidationError(MLPipelineException):
    """Input data is unusable: unknown column, wrong labels, empty set."""


class InferenceInputError(MLPipelineException):
    """A prediction request is malformed; the predictor answers it with HTTP 400."""
