"""Where archive and backup files live: one Django storage (django-storages), any backend.

    archives/<wiki_id>/<archive_id>/<file>     what archive writes before it drops anything
    backups/<backup_id>/<wiki_id>/<file>       what a backup (a run's item, or the backup
                                               taken before a restore or a migration) writes

The storage is `STORAGES["farm_archives"]`: Django's FileSystemStorage (with atomic saves)
under the storage driver's folder in the embedded default, django-storages' S3Storage in
production. Every name is built here from checked parts, so nothing outside a wiki's own
folders is ever written or deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from botocore import exceptions as botocore_errors
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from provisioning.drivers.base import (
    ARCHIVE_FILE_RE,
    ARCHIVE_ID_RE,
    WIKI_ID_RE,
    PermanentError,
    TransientError,
)
from provisioning.drivers.files import fsync_directory
from provisioning.drivers.s3 import classify_client_error

STORAGE_ALIAS = "farm_archives"
# A file is spooled to disk past this size before it is handed to the storage in one save
# (S3Storage uploads a saved file in multipart chunks; FileSystemStorage moves it).
SPOOL_BYTES = 8 * 1024 * 1024
CHUNK = 1024 * 1024


class AtomicFileSystemStorage(FileSystemStorage):
    """Django's FileSystemStorage, but a save renames a complete, synced temporary file into
    place, so a crash mid-save never leaves part of a file under its final name."""

    def _save(self, name: str, content: File) -> str:
        target = self.path(name)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(dir=folder, prefix=".", suffix=".partial")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                for chunk in content.chunks():
                    stream.write(chunk)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(partial, target)
            fsync_directory(Path(folder))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        return str(name).replace("\\", "/")


def archive_storage() -> Storage:
    return storages[STORAGE_ALIAS]


@dataclass(frozen=True)
class Sink:
    """The folder of one archive or one backup of one wiki."""

    folder: str

    def name(self, file_name: str) -> str:
        if not ARCHIVE_FILE_RE.fullmatch(file_name):
            raise PermanentError(
                f"archive file {file_name!r} breaks the rule {ARCHIVE_FILE_RE.pattern}"
            )
        return f"{self.folder}{file_name}"

    @contextmanager
    def writer(self, file_name: str) -> Iterator[BinaryIO]:
        """A binary stream; the file is saved (whole) only when the block exits cleanly."""
        name = self.name(file_name)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            yield cast(BinaryIO, spool)
            spool.seek(0)
            with _storage_errors(f"writing {name}"):
                saved = archive_storage().save(name, File(spool, name=file_name))
            if saved != name:  # a backend that renamed instead of overwriting
                raise PermanentError(f"the archive storage saved {name} as {saved}")

    @contextmanager
    def reader(self, file_name: str) -> Iterator[BinaryIO]:
        name = self.name(file_name)
        storage = archive_storage()
        with _storage_errors(f"reading {name}"):
            if not storage.exists(name):
                raise PermanentError(f"archive file {name} does not exist")
            stream = storage.open(name, "rb")
            # S3Storage downloads on the first read: here, where its errors are classified.
            stream.seek(0)
        with stream:
            yield cast(BinaryIO, stream)

    def exists(self, file_name: str) -> bool:
        with _storage_errors(f"looking for {self.name(file_name)}"):
            return archive_storage().exists(self.name(file_name))

    def delete(self) -> int:
        """Delete every file of this folder; return how many there were."""
        storage = archive_storage()
        with _storage_errors(f"deleting {self.folder}"):
            try:
                _, files = storage.listdir(self.folder)
            except FileNotFoundError:
                return 0
            for file_name in files:
                storage.delete(f"{self.folder}{file_name}")
        _remove_empty_folder(storage, self.folder)
        return len(files)


def archive_sink(wiki_id: str, archive_id: str) -> Sink:
    return Sink(f"archives/{_checked_wiki(wiki_id)}/{_checked_id(archive_id)}/")


def backup_sink(backup_id: str, wiki_id: str) -> Sink:
    return Sink(f"backups/{_checked_id(backup_id)}/{_checked_wiki(wiki_id)}/")


def source_sink(wiki_id: str, source: dict[str, str]) -> Sink:
    """The sink a restore reads: {"kind": "backup"|"archive", "id": ...} of `wiki_id`."""
    if source.get("kind") == "archive":
        return archive_sink(wiki_id, source["id"])
    return backup_sink(source["id"], wiki_id)


def delete_wiki_archives(wiki_id: str) -> int:
    """Delete every archive of `wiki_id` (archives/<wiki_id>/<archive id>/); only folders
    whose names are archive ids are touched."""
    storage = archive_storage()
    folder = f"archives/{_checked_wiki(wiki_id)}/"
    with _storage_errors(f"listing {folder}"):
        try:
            archive_ids, _ = storage.listdir(folder)
        except FileNotFoundError:
            return 0
    deleted = 0
    for archive_id in archive_ids:
        if ARCHIVE_ID_RE.fullmatch(archive_id):
            deleted += archive_sink(wiki_id, archive_id).delete()
    return deleted


def _checked_wiki(wiki_id: str) -> str:
    if not WIKI_ID_RE.fullmatch(wiki_id):
        raise PermanentError(f"wiki id {wiki_id!r} breaks the rule {WIKI_ID_RE.pattern}")
    return wiki_id


def _checked_id(archive_id: str) -> str:
    if not ARCHIVE_ID_RE.fullmatch(archive_id):
        raise PermanentError(f"archive id {archive_id!r} breaks the rule {ARCHIVE_ID_RE.pattern}")
    return archive_id


def _remove_empty_folder(storage: Storage, folder: str) -> None:
    """FileSystemStorage leaves empty folders behind; S3 has none to remove."""
    path = getattr(storage, "path", None)
    if path is None:
        return
    try:
        shutil.rmtree(path(folder.rstrip("/")), ignore_errors=True)
    except NotImplementedError:
        return


@contextmanager
def _storage_errors(doing: str) -> Iterator[None]:
    """A storage backend's error as a driver error: OSError and network errors may pass
    (retry), anything the backend refuses for good is permanent."""
    try:
        yield
    except (PermanentError, TransientError):
        raise
    except FileNotFoundError as exc:
        raise PermanentError(f"archive storage: {doing}: {exc}") from exc
    except OSError as exc:
        raise TransientError(f"archive storage: {doing}: {exc}") from exc
    except botocore_errors.ClientError as exc:
        raise classify_client_error(exc, f"archive storage: {doing}") from exc
    except botocore_errors.BotoCoreError as exc:  # connection, timeout, credentials
        raise TransientError(f"archive storage: {doing}: {exc}") from exc
