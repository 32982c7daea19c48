"""The embedded storage driver: a folder per wiki, laid out like the S3 bucket.

    <root>/wikis/<wiki_id>/                         the wiki's namespace (uploads, marker)
    <root>/archives/<wiki_id>/<archive_id>/<name>   the wiki's archive files (written by
                                                    provisioning/sinks.py; purged here)

Every file is written to a temporary name in its final folder and renamed into place, so a
reader sees either the old file or the whole new one. Folders are only ever removed when
their path was derived from the wiki id and still resolves inside the root.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from provisioning.drivers.base import (
    Inspection,
    PermanentError,
    StorageDriver,
    TransientError,
    WikiResources,
)
from provisioning.drivers.files import fsync_directory

MARKER_NAME = ".wiki-farm.json"
TEMP_SUFFIX = ".tmp"


class FilesystemStorageDriver(StorageDriver):
    def __init__(self, *, root: str | Path) -> None:
        self.root = Path(root)

    # -- the contract -------------------------------------------------------------------

    def create(self, wiki: WikiResources) -> dict[str, Any]:
        return {"marker": str(self._write_marker(wiki))}

    def archive(self, wiki: WikiResources) -> dict[str, Any]:
        objects, size = _inventory(self.namespace_path(wiki))
        return {"objects": objects, "bytes": size}

    def restore(self, wiki: WikiResources) -> dict[str, Any]:
        marker = self._write_marker(wiki)
        objects, size = _inventory(self.namespace_path(wiki))
        return {"marker": str(marker), "objects": objects, "bytes": size}

    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        namespace = self.namespace_path(wiki)
        archives = self.archives_path(wiki)
        objects, _ = _inventory(namespace)
        archive_objects, _ = _inventory(archives)
        for folder in (namespace, archives):
            with _os_errors(f"removing {folder}"):
                if folder.exists():
                    shutil.rmtree(folder)
        remaining = [str(folder) for folder in (namespace, archives) if folder.exists()]
        if remaining:
            # Something wrote into the namespace while it was being removed: purge again.
            raise TransientError(f"purge left {remaining} behind")
        return {"objects_deleted": objects, "archive_objects_deleted": archive_objects}

    def inspect(self, wiki: WikiResources) -> Inspection:
        objects, size = _inventory(self.namespace_path(wiki))
        archive_objects, archive_bytes = _inventory(self.archives_path(wiki))
        return Inspection(
            exists=self._marker_path(wiki).is_file(),
            bytes=size,
            counts={"objects": objects, "archive_objects": archive_objects},
            details={"archive_bytes": archive_bytes},
        )

    def location(self, wiki: WikiResources) -> dict[str, str]:
        # Only a name for the export (the id was validated), so no look at the tree: the
        # publisher asks this for thousands of wikis in a row.
        return {"type": "filesystem", "path": f"{self._resolved_root}/wikis/{wiki.wiki_id}/"}

    @cached_property
    def _resolved_root(self) -> Path:
        return self.root.resolve()

    def put_file(self, wiki: WikiResources, relative_path: str, data: bytes) -> None:
        namespace = self.namespace_path(wiki)
        target = namespace.joinpath(*_safe_segments(relative_path))
        if target == namespace / MARKER_NAME:
            raise PermanentError(f"{MARKER_NAME} is the driver's marker, not a wiki file")
        # Checked before mkdir too: a symlinked subfolder must not get folders made for it.
        self._check_inside(target.parent, namespace)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._check_inside(target.parent, namespace)
        with _atomic_writer(target) as stream:
            stream.write(bytes(data))

    def copy_files(self, source: WikiResources, target: WikiResources) -> dict[str, Any]:
        source_root = self.namespace_path(source)
        target_root = self.namespace_path(target)
        objects = size = 0
        for directory, _, files in os.walk(source_root, followlinks=False):
            for name in files:
                path = Path(directory, name)
                relative = path.relative_to(source_root).as_posix()
                if relative == MARKER_NAME or path.is_symlink() or _is_temp_name(name):
                    continue
                with _os_errors(f"reading {path}"):
                    data = path.read_bytes()
                self.put_file(target, relative, data)
                objects += 1
                size += len(data)
        self._check_inside(target_root, self._resolved_root)
        return {"objects": objects, "bytes": size}

    # -- names --------------------------------------------------------------------------

    def namespace_path(self, wiki: WikiResources) -> Path:
        return self._derived_folder("wikis", wiki.wiki_id)

    def archives_path(self, wiki: WikiResources) -> Path:
        return self._derived_folder("archives", wiki.wiki_id)

    def _derived_folder(self, area: str, wiki_id: str) -> Path:
        # WikiResources already validated the id; the checks here guard against a symlink
        # planted in the tree that would make a purge delete something outside the root.
        root = self.root.resolve()
        folder = root / area / wiki_id
        if folder.is_symlink():
            raise PermanentError(f"{folder} is a symbolic link; refusing to use it")
        self._check_inside(folder, root)
        return folder

    def _check_inside(self, path: Path, folder: Path) -> None:
        resolved = path.resolve()
        if resolved != folder and not resolved.is_relative_to(folder.resolve()):
            raise PermanentError(f"{path} resolves to {resolved}, outside {folder}")

    def _marker_path(self, wiki: WikiResources) -> Path:
        return self.namespace_path(wiki) / MARKER_NAME

    def _write_marker(self, wiki: WikiResources) -> Path:
        marker = self._marker_path(wiki)
        try:
            content = json.dumps(
                {"wiki_id": wiki.wiki_id, "metadata": wiki.metadata}, indent=2, sort_keys=True
            )
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"wiki metadata is not JSON: {exc}") from exc
        marker.parent.mkdir(parents=True, exist_ok=True)
        with _atomic_writer(marker) as stream:
            stream.write(content.encode("utf-8") + b"\n")
        return marker


# -- helpers ----------------------------------------------------------------------------


def _safe_segments(relative_path: str) -> list[str]:
    """The segments of a wiki-relative path, refusing anything that could climb out."""
    if not isinstance(relative_path, str) or not relative_path:
        raise PermanentError(f"file path {relative_path!r} must be a non-empty string")
    if "\0" in relative_path or "\\" in relative_path:
        raise PermanentError(f"file path {relative_path!r} holds a NUL or a backslash")
    if relative_path.startswith("/"):
        raise PermanentError(f"file path {relative_path!r} is absolute")
    segments = relative_path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise PermanentError(f"file path {relative_path!r} has an empty, '.' or '..' segment")
    return segments


def _is_temp_name(name: str) -> bool:
    """A file _atomic_writer has not renamed into place yet (a wiki's "x.tmp" is not one)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _inventory(folder: Path) -> tuple[int, int]:
    """Files and bytes under `folder`, without following symbolic links."""
    objects = size = 0
    for directory, _, files in os.walk(folder, followlinks=False):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # removed while we walked
                size += os.lstat(os.path.join(directory, name)).st_size
                objects += 1
    return objects, size


@contextlib.contextmanager
def _atomic_writer(target: Path) -> Iterator[BinaryIO]:
    """A stream to a temporary file beside `target`, renamed onto it on a clean exit."""
    with _os_errors(f"writing {target}"):
        descriptor, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX
        )
    temp = Path(temp_name)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        with _os_errors(f"publishing {target}"):
            os.replace(temp, target)
            fsync_directory(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


@contextlib.contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """Map OS errors: refusals are permanent, the rest (full disk, I/O) may pass."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, PermissionError) or exc.errno in (errno.EROFS, errno.ENAMETOOLONG):
            raise PermanentError(f"{action}: {exc}") from exc
        raise TransientError(f"{action}: {exc}") from exc
