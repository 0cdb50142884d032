"""s3:// storage through boto3, with a custom endpoint for MinIO and retries from tenacity."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from mlcore.config import s3_endpoint_from_env, storage_environment
from mlcore.errors import NotFoundError, StorageError
from mlcore.storage.base import Storage, check_key, join_key

T = TypeVar("T")
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status >= 500 or code in {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}
    return isinstance(exc, BotoCoreError | EndpointConnectionError | ConnectionError)


_retrying = retry(
    retry=retry_if_exception(_transient),
    stop=stop_after_attempt(storage_environment().storage_retry_attempts),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        endpoint = endpoint_url or s3_endpoint_from_env()
        # botocore retries on its own too; tenacity covers whole operations (multipart uploads included).
        # Explicit timeouts: an S3 endpoint that accepts and then stalls must fail the call, not hang it.
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
            connect_timeout=10,
            read_timeout=60,
        )
        self.client: Any = boto3.client("s3", endpoint_url=endpoint, config=config)

    def _key(self, key: str) -> str:
        return join_key(self.prefix, check_key(key))

    def _call(self, what: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return _retrying(fn)(*args, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise NotFoundError(f"not found: {self.uri_for(key) if key else self.root_uri} ({code})") from None
            raise StorageError(f"S3 {what} failed for {self.root_uri}/{key}: {code or exc}") from exc
        except (BotoCoreError, ConnectionError) as exc:
            raise StorageError(f"S3 {what} failed for {self.root_uri}/{key}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self._call("put", key, self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data, **extra)

    def put_file(self, key: str, path: Path) -> None:
        self._call("upload", key, self.client.upload_file, str(path), self.bucket, self._key(key))

    def get_bytes(self, key: str) -> bytes:
        response = self._call("get", key, self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        return bytes(response["Body"].read())

    def get_file(self, key: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        self._call("download", key, self.client.download_file, self.bucket, self._key(key), str(destination))

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        head = self._call("head", key, self.client.head_object, Bucket=self.bucket, Key=self._key(key))
        return int(head["ContentLength"])

    def list(self, prefix: str = "") -> list[str]:
        full = join_key(self.prefix, check_key(prefix)) if prefix else self.prefix
        if full:
            full += "/"
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in _retrying(lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=full)))():
                for item in page.get("Contents", []):
                    keys.append(item["Key"][len(self.prefix) + 1 :] if self.prefix else item["Key"])
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise StorageError(f"S3 list failed for {self.root_uri}/{prefix}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 list failed for {self.root_uri}/{prefix}: {exc}") from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._key(key))
