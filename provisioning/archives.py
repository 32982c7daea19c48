"""Archive and backup files: compressed, hashed streams into a sink, and the manifest."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from provisioning.drivers.base import PermanentError
from provisioning.sinks import Sink

DATABASE_FILE = "database.sql.gz"
SEARCH_FILE = "search.ndjson.gz"
MANIFEST_FILE = "manifest.json"
CHUNK = 1024 * 1024


class HashingWriter:
    """A write-only stream that hashes and counts what passes through to `raw`."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


def write_compressed(
    sink: Sink, name: str, produce: Callable[[BinaryIO], dict[str, Any]]
) -> dict[str, Any]:
    """Stream `produce(stream)` through gzip into an archive file; add its sha256 and size."""
    with sink.writer(name) as raw:
        hashing = HashingWriter(raw)
        # mtime=0: the same content gives the same bytes, so a repeated step gives the same hash.
        # Level 6, gzip's own default: 9 costs about twice the time for a few per cent.
        with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0, compresslevel=6) as compressed:
            result = produce(cast(BinaryIO, compressed))  # GzipFile is a binary stream
    return {**result, "file": name, "sha256": hashing.sha256.hexdigest(), "bytes": hashing.bytes}


def read_compressed(
    sink: Sink, name: str, consume: Callable[[BinaryIO], dict[str, Any]]
) -> dict[str, Any]:
    with sink.reader(name) as raw:
        with gzip.GzipFile(fileobj=raw, mode="rb") as compressed:
            try:
                return consume(cast(BinaryIO, compressed))
            except (OSError, EOFError) as exc:
                raise PermanentError(f"archive file {name} is not valid gzip: {exc}") from exc


def file_sha256(sink: Sink, name: str) -> str:
    digest = hashlib.sha256()
    with sink.reader(name) as raw:
        while chunk := raw.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


def manifest_sha256(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(manifest_bytes(manifest)).hexdigest()


def write_manifest(sink: Sink, manifest: dict[str, Any]) -> str:
    body = manifest_bytes(manifest)
    with sink.writer(MANIFEST_FILE) as raw:
        raw.write(body)
    return hashlib.sha256(body).hexdigest()


def read_manifest(sink: Sink) -> dict[str, Any]:
    with sink.reader(MANIFEST_FILE) as raw:
        try:
            return json.loads(raw.read())
        except ValueError as exc:
            raise PermanentError(f"{sink.folder} has an unreadable manifest: {exc}") from exc


def verify_files(sink: Sink, manifest: dict[str, Any]) -> dict[str, str]:
    """Re-read every file the manifest lists and compare its sha256; return them."""
    checked = {}
    for section in ("database", "search"):
        entry = manifest[section]
        actual = file_sha256(sink, entry["file"])
        if actual != entry["sha256"]:
            raise PermanentError(
                f"{sink.folder}: {entry['file']} has sha256 {actual}, "
                f"the manifest says {entry['sha256']}"
            )
        checked[entry["file"]] = actual
    return checked
