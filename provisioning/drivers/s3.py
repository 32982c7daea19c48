"""Storage on S3 (or an S3-compatible store such as Swift's s3api): one namespace per wiki.

Layout, in the shared bucket or, with `bucket_per_wiki`, in the wiki's own bucket
`<bucket>-<wiki id>`:

    wikis/<id>/.wiki-farm.json              marker: the wiki's metadata
    wikis/<id>/<relative path>              the wiki's files
    archives/<id>/<archive id>/<file name>  archive files (dumps, exports, manifest)

Plain boto3 rather than django-storages: a driver needs object versions, batched deletes,
bucket creation and deletion and multipart uploads, which django-storages' `Storage` API
(open/save/delete/exists of single current files) does not offer, and drivers stay free of
Django so they can be used and tested without settings.

Every prefix this driver lists or deletes ends with "/", so wiki `ab` never reaches the
objects of wiki `abc`; purge deletes only under the two prefixes derived from the wiki id
(and, in bucket-per-wiki mode, the then empty bucket named after it).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from itertools import islice
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as boto_errors
from botocore.config import Config

from provisioning.drivers.base import (
    Inspection,
    PermanentError,
    StorageDriver,
    TransientError,
    WikiResources,
)

MARKER_NAME = ".wiki-farm.json"
ADDRESSING_STYLES = ("auto", "path", "virtual")
# S3's limit for one DeleteObjects request; Swift's s3api answers MalformedXML above it.
DELETE_BATCH_SIZE = 1000
# Listing and deleting again covers objects written while a purge ran; more rounds than
# this means something keeps writing, and the purge must fail rather than report success.
PURGE_ROUNDS = 3
MAX_KEY_BYTES = 1024
# An archive is buffered in memory up to this size, then on disk, before it is uploaded.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
READ_BUFFER_BYTES = 1024 * 1024
TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=8 * 1024 * 1024,
    multipart_chunksize=8 * 1024 * 1024,
    max_concurrency=4,
)
BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
TRANSIENT_ERROR_CODES = frozenset(
    {
        "InternalError",
        "OperationAborted",
        "RequestLimitExceeded",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
    }
)
MISSING_CODES = frozenset({"404", "NoSuchBucket", "NoSuchKey", "NoSuchVersion", "NotFound"})
ALREADY_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion"})
# Why a permanent error happened, in words an operator can act on.
PERMANENT_HINTS = {
    "403": "access denied: check the credentials and the bucket policy",
    "AccessDenied": "access denied: check the credentials and the bucket policy",
    "InvalidAccessKeyId": "the access key is unknown to the S3 service",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "InvalidBucketName": "the bucket name is not valid for this S3 service",
    "NoSuchBucket": "the bucket does not exist",
    "BucketAlreadyExists": "the bucket name is taken by another account",
}


def check_bucket_name(name: str) -> str:
    """Refuse names S3 would refuse, before any request is made."""
    if (
        not BUCKET_NAME_RE.fullmatch(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or _looks_like_ip_address(name)
    ):
        raise PermanentError(
            f"bucket name {name!r} is not a valid S3 bucket name (3-63 characters of a-z, 0-9, "
            "'.' and '-', starting and ending with a letter or digit, not an IP address)"
        )
    return name


def _looks_like_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_relative_path(relative_path: str) -> str:
    """Refuse paths that could leave the wiki's namespace or replace its marker."""
    segments = relative_path.split("/")
    if (
        not relative_path
        or any(segment in ("", ".", "..") for segment in segments)
        or any(ord(char) < 32 or char in "\\\x7f" for char in relative_path)
    ):
        raise PermanentError(
            f"relative path {relative_path!r} must be '/'-separated names without empty, "
            "'.' or '..' segments, a leading '/', backslashes or control characters"
        )
    if relative_path == MARKER_NAME:
        raise PermanentError(f"relative path {relative_path!r} is reserved for the wiki marker")
    return relative_path


def _add_content_md5(params: dict[str, Any], **_: Any) -> None:
    """Give DeleteObjects the Content-MD5 header that Swift's s3api requires.

    botocore sends a CRC32 checksum header instead, which AWS accepts and Swift does not.
    """
    body = params.get("body")
    if isinstance(body, bytes) and "Content-MD5" not in params["headers"]:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        params["headers"]["Content-MD5"] = base64.b64encode(digest).decode("ascii")


def _error_code(exc: boto_errors.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: boto_errors.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _is_missing(exc: boto_errors.ClientError) -> bool:
    return _error_code(exc) in MISSING_CODES


def classify_client_error(exc: boto_errors.ClientError, action: str) -> Exception:
    """Turn an S3 error response into a TransientError or a PermanentError."""
    code = _error_code(exc)
    status = _http_status(exc)
    message = exc.response.get("Error", {}).get("Message", "")
    if code in TRANSIENT_ERROR_CODES or status >= 500 or status == 429:
        return TransientError(f"S3 {action} failed, may succeed later: {code} {message}".strip())
    hint = PERMANENT_HINTS.get(code, message or "refused")
    return PermanentError(f"S3 {action} failed: {code} ({hint})")


@contextmanager
def s3_errors(action: str) -> Iterator[None]:
    """Raise only the driver's error classes from the S3 calls made in the block."""
    try:
        yield
    except boto_errors.ClientError as exc:
        raise classify_client_error(exc, action) from exc
    except (
        boto_errors.ConnectionError,
        boto_errors.HTTPClientError,
        boto_errors.IncompleteReadError,
    ) as exc:
        # Refused or dropped connections, timeouts and cut-off bodies: the network, not us.
        raise TransientError(f"S3 {action} failed, may succeed later: {exc}") from exc
    except boto_errors.BotoCoreError as exc:
        # Missing credentials, invalid parameters: retrying changes nothing.
        raise PermanentError(f"S3 {action} failed: {exc}") from exc


def _batched(items: Iterable[dict[str, str]], size: int) -> Iterator[list[dict[str, str]]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class S3StorageDriver(StorageDriver):
    """A `wikis/<id>/` namespace and `archives/<id>/` in a shared or per-wiki bucket."""

    def __init__(
        self,
        *,
        bucket: str,
        bucket_per_wiki: bool = False,
        endpoint_url: str | None = None,
        region: str | None = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        addressing_style: str = "auto",
    ) -> None:
        if addressing_style not in ADDRESSING_STYLES:
            raise PermanentError(
                f"S3 addressing style {addressing_style!r} is not one of {ADDRESSING_STYLES}"
            )
        if bool(access_key) != bool(secret_key):
            raise PermanentError("S3 access key and secret key must be given together")
        self.bucket = check_bucket_name(bucket)
        self.bucket_per_wiki = bucket_per_wiki
        self.endpoint_url = endpoint_url or None
        self.region = region or "us-east-1"
        self._access_key = access_key or None
        self._secret_key = secret_key or None
        self.addressing_style = addressing_style

    @cached_property
    def client(self) -> Any:
        """Made on first use, so a driver built before a worker forks shares no connections."""
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": self.addressing_style},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=16,
            # Checksums only where S3 demands them: botocore's default sends CRC32 checksums,
            # as aws-chunked trailers over HTTPS, which not every S3-compatible store accepts
            # (Swift 2.30 took them over plain HTTP here; HTTPS was not tried).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            config=config,
        )
        client.meta.events.register("before-call.s3.DeleteObjects", _add_content_md5)
        return client

    # Names derived from the wiki -------------------------------------------------------

    def bucket_for(self, wiki: WikiResources) -> str:
        if self.bucket_per_wiki:
            return check_bucket_name(f"{self.bucket}-{wiki.wiki_id}")
        return self.bucket

    @staticmethod
    def namespace_prefix(wiki: WikiResources) -> str:
        return _checked_prefix(wiki.storage_prefix)

    @staticmethod
    def archive_prefix(wiki: WikiResources) -> str:
        return _checked_prefix(f"archives/{wiki.wiki_id}/")

    def marker_key(self, wiki: WikiResources) -> str:
        return self.namespace_prefix(wiki) + MARKER_NAME

    # The driver contract ---------------------------------------------------------------

    def create(self, wiki: WikiResources) -> dict[str, Any]:
        bucket = self.bucket_for(wiki)
        self._ensure_bucket(bucket)
        marker = self._put_marker(bucket, wiki)
        return {"bucket": bucket, "marker": marker}

    def archive(self, wiki: WikiResources) -> dict[str, Any]:
        # The marker is counted too: it is an object of the namespace, and restore() counts
        # the same way, so the two inventories can be compared.
        bucket = self._existing_bucket(wiki)
        objects, size = self._inventory(bucket, self.namespace_prefix(wiki))
        return {"objects": objects, "bytes": size}

    def restore(self, wiki: WikiResources) -> dict[str, Any]:
        bucket = self._existing_bucket(wiki)
        if not self._object_exists(bucket, self.marker_key(wiki)):
            self._put_marker(bucket, wiki)
        objects, size = self._inventory(bucket, self.namespace_prefix(wiki))
        return {"objects": objects, "bytes": size}

    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        bucket = self.bucket_for(wiki)
        receipt: dict[str, Any] = {"objects_deleted": 0, "archive_objects_deleted": 0}
        if self.bucket_per_wiki:
            receipt["bucket_deleted"] = False
        if not self._bucket_exists(bucket):
            return receipt
        receipt["objects_deleted"] = self._purge_prefix(bucket, self.namespace_prefix(wiki))
        receipt["archive_objects_deleted"] = self._purge_prefix(bucket, self.archive_prefix(wiki))
        if self.bucket_per_wiki:
            receipt["bucket_deleted"] = self._delete_empty_bucket(bucket)
        return receipt

    def inspect(self, wiki: WikiResources) -> Inspection:
        bucket = self.bucket_for(wiki)
        if not self._bucket_exists(bucket):
            return Inspection(
                exists=False,
                counts={"objects": 0, "archive_objects": 0},
                details={"bucket": bucket, "bucket_exists": False, "archive_bytes": 0},
            )
        objects, size = self._inventory(bucket, self.namespace_prefix(wiki))
        archive_objects, archive_bytes = self._inventory(bucket, self.archive_prefix(wiki))
        return Inspection(
            exists=self._object_exists(bucket, self.marker_key(wiki)),
            bytes=size,
            counts={"objects": objects, "archive_objects": archive_objects},
            details={"bucket": bucket, "bucket_exists": True, "archive_bytes": archive_bytes},
        )

    def location(self, wiki: WikiResources) -> dict[str, str]:
        location = {
            "type": "s3",
            "bucket": self.bucket_for(wiki),
            "prefix": self.namespace_prefix(wiki),
        }
        if self.endpoint_url:
            location["endpoint"] = self.endpoint_url
        return location

    def put_file(self, wiki: WikiResources, relative_path: str, data: bytes) -> None:
        key = self.namespace_prefix(wiki) + check_relative_path(relative_path)
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise PermanentError(f"object key for {relative_path!r} exceeds {MAX_KEY_BYTES} bytes")
        bucket = self.bucket_for(wiki)
        with s3_errors(f"upload of {key} to bucket {bucket}"):
            self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def copy_files(self, source: WikiResources, target: WikiResources) -> dict[str, Any]:
        source_bucket = self._existing_bucket(source)
        target_bucket = self.bucket_for(target)
        source_prefix = self.namespace_prefix(source)
        target_prefix = self.namespace_prefix(target)
        objects = size = 0
        with s3_errors(f"listing of {source_prefix} in bucket {source_bucket}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=source_bucket, Prefix=source_prefix
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    if entry["Key"] == self.marker_key(source):
                        continue
                    key = target_prefix + entry["Key"][len(source_prefix) :]
                    self.client.copy_object(
                        Bucket=target_bucket,
                        Key=key,
                        CopySource={"Bucket": source_bucket, "Key": entry["Key"]},
                    )
                    objects += 1
                    size += entry["Size"]
        return {"objects": objects, "bytes": size}

    def _bucket_exists(self, bucket: str) -> bool:
        with s3_errors(f"check of bucket {bucket}"):
            try:
                self.client.head_bucket(Bucket=bucket)
            except boto_errors.ClientError as exc:
                if _is_missing(exc):
                    return False
                raise
        return True

    def _existing_bucket(self, wiki: WikiResources) -> str:
        bucket = self.bucket_for(wiki)
        if not self._bucket_exists(bucket):
            raise PermanentError(
                f"bucket {bucket!r} of wiki {wiki.wiki_id!r} does not exist: its files are gone"
            )
        return bucket

    def _ensure_bucket(self, bucket: str) -> None:
        if self._bucket_exists(bucket):
            return
        arguments: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with s3_errors(f"creation of bucket {bucket}"):
            try:
                self.client.create_bucket(**arguments)
            except boto_errors.ClientError as exc:
                # A concurrent or earlier attempt of ours created it: that is success.
                if _error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    def _delete_empty_bucket(self, bucket: str) -> bool:
        with s3_errors(f"deletion of bucket {bucket}"):
            try:
                self.client.delete_bucket(Bucket=bucket)
            except boto_errors.ClientError as exc:
                if _is_missing(exc):
                    return False
                if _error_code(exc) == "BucketNotEmpty":
                    raise PermanentError(
                        f"bucket {bucket!r} still holds objects outside the wiki's prefixes; "
                        "they were not created by the farm, so they are left for an operator"
                    ) from exc
                raise
        return True

    # Objects ---------------------------------------------------------------------------

    def _put_marker(self, bucket: str, wiki: WikiResources) -> str:
        key = self.marker_key(wiki)
        body = json.dumps({**wiki.metadata, "wiki_id": wiki.wiki_id}, sort_keys=True, default=str)
        with s3_errors(f"write of marker {key} to bucket {bucket}"):
            self.client.put_object(
                Bucket=bucket, Key=key, Body=body.encode("utf-8"), ContentType="application/json"
            )
        return key

    def _object_exists(self, bucket: str, key: str) -> bool:
        with s3_errors(f"check of {key} in bucket {bucket}"):
            try:
                self.client.head_object(Bucket=bucket, Key=key)
            except boto_errors.ClientError as exc:
                if _is_missing(exc):
                    return False
                raise
        return True

    def _inventory(self, bucket: str, prefix: str) -> tuple[int, int]:
        """Count the current objects under `prefix` and their bytes, page by page."""
        objects = size = 0
        with s3_errors(f"listing of {prefix} in bucket {bucket}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=_checked_prefix(prefix)
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    objects += 1
                    size += entry["Size"]
        return objects, size

    # Purge -----------------------------------------------------------------------------

    def _purge_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every version and delete marker under `prefix`, then prove none is left."""
        prefix = _checked_prefix(prefix)
        deleted = 0
        remaining = 0
        for _ in range(PURGE_ROUNDS):
            deleted += self._delete_in_batches(bucket, self._iter_versions(bucket, prefix))
            # Stores without version listing, and objects written since the listing.
            deleted += self._delete_in_batches(bucket, self._iter_current_keys(bucket, prefix))
            remaining = self._count_remaining(bucket, prefix)
            if remaining == 0:
                return deleted
        raise PermanentError(
            f"purge of {prefix} in bucket {bucket!r} left {remaining} object versions "
            f"after {PURGE_ROUNDS} rounds (is something still writing there?)"
        )

    def _iter_versions(self, bucket: str, prefix: str) -> Iterator[dict[str, str]]:
        for page in self._version_pages(bucket, prefix):
            for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                yield {"Key": entry["Key"], "VersionId": entry["VersionId"]}

    def _iter_current_keys(self, bucket: str, prefix: str) -> Iterator[dict[str, str]]:
        with s3_errors(f"listing of {prefix} in bucket {bucket}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    yield {"Key": entry["Key"]}

    def _version_pages(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """Pages of ListObjectVersions; none where the store does not implement it."""
        with s3_errors(f"listing of versions under {prefix} in bucket {bucket}"):
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=bucket, Prefix=prefix
            )
            try:
                yield from pages
            except boto_errors.ClientError as exc:
                if _error_code(exc) != "NotImplemented":
                    raise

    def _count_remaining(self, bucket: str, prefix: str) -> int:
        versions = sum(1 for _ in self._iter_versions(bucket, prefix))
        current = sum(1 for _ in self._iter_current_keys(bucket, prefix))
        return max(versions, current)

    def _delete_in_batches(self, bucket: str, identifiers: Iterable[dict[str, str]]) -> int:
        deleted = 0
        for batch in _batched(identifiers, DELETE_BATCH_SIZE):
            deleted += self._delete_batch(bucket, batch)
        return deleted

    def _delete_batch(self, bucket: str, batch: list[dict[str, str]]) -> int:
        with s3_errors(f"deletion of {len(batch)} objects in bucket {bucket}"):
            response = self.client.delete_objects(
                Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
            )
        errors = response.get("Errors", [])
        failures = [error for error in errors if error.get("Code") not in ALREADY_GONE_CODES]
        if failures:
            raise _batch_error(bucket, failures)
        return len(batch) - len(errors)


def _checked_prefix(prefix: str) -> str:
    # Without the trailing "/", the prefix of wiki `ab` would also match wiki `abc`.
    if not prefix.endswith("/") or prefix.startswith("/"):
        raise PermanentError(f"storage prefix {prefix!r} must end with '/' and not start with it")
    return prefix


def _batch_error(bucket: str, failures: list[dict[str, Any]]) -> Exception:
    first = failures[0]
    summary = (
        f"S3 deletion in bucket {bucket} failed for {len(failures)} objects, first "
        f"{first.get('Key')!r}: {first.get('Code')} ({first.get('Message', '')})"
    )
    if all(failure.get("Code") in TRANSIENT_ERROR_CODES for failure in failures):
        return TransientError(summary)
    return PermanentError(summary)
