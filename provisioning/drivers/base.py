"""The contract every resource driver keeps.

One interface per resource kind: database, storage, search. Every method is idempotent
(running it again after a crash or a redelivered task is harmless) and raises either
`TransientError` (the engine retries with backoff) or `PermanentError` (the operation fails
with the message). Drivers never touch the registry: they get a `WikiResources` value whose
names were derived from a registered wiki, and return plain JSON-serialisable dicts that the
engine records in the Operation.

Streams: `archive()` writes plain content (SQL text, NDJSON) to a binary sink and
`restore()` reads it back from a binary source. Compression, hashing and where the bytes
live are the engine's and the storage driver's business, not the database's or search's.
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

# The same rule as the registry's wiki id; repeated here so that a driver refuses a bad
# name even if it is called from somewhere that skipped the registry's validation.
WIKI_ID_RE = re.compile(r"^[a-z][a-z0-9]{1,31}$")
# A database name: what a family pattern may produce, and nothing that needs escaping.
DATABASE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ARCHIVE_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")
ARCHIVE_FILE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,100}$")


class DriverError(Exception):
    """Base class of the errors a driver raises on purpose."""


class TransientError(DriverError):
    """The resource may succeed later (timeout, throttling, lock wait): retry with backoff."""


class PermanentError(DriverError):
    """Retrying will not help (bad name, refused, corrupt data): fail the operation."""


@dataclass(frozen=True)
class WikiResources:
    """Names of one wiki's external things, derived from its registry record."""

    wiki_id: str
    database_name: str
    storage_prefix: str
    cluster: str = "default"
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not WIKI_ID_RE.fullmatch(self.wiki_id):
            raise PermanentError(
                f"wiki id {self.wiki_id!r} breaks the rule ^[a-z][a-z0-9]{{1,31}}$"
            )
        if not DATABASE_NAME_RE.fullmatch(self.database_name):
            raise PermanentError(
                f"database name {self.database_name!r} breaks the rule ^[a-z][a-z0-9_]{{0,63}}$"
            )
        if self.storage_prefix != f"wikis/{self.wiki_id}/":
            raise PermanentError(
                f"storage prefix {self.storage_prefix!r} is not wikis/{self.wiki_id}/"
            )


def hook_argv(template: str, values: dict[str, str]) -> list[str]:
    """The post-create hook's command: the template split into words first and the
    placeholders substituted inside each word, so a value can never add or split arguments."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise PermanentError(f"post-create hook cannot be parsed: {exc}") from exc
    argv = []
    for word in words:
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        argv.append(word)
    return argv


@dataclass
class Inspection:
    """What a driver sees of one wiki's resource."""

    exists: bool
    bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"exists": self.exists, "bytes": self.bytes, "counts": self.counts, **self.details}


class DatabaseDriver(ABC):
    """A database per wiki."""

    kind = "database"
    engine = "unknown"  # recorded in archive manifests: a dump restores on the same engine
    # What a template's /*_*/ and /*$wgDBTableOptions*/ become, for the schema load and for
    # the migrations provisioning.schema_changes renders the same way.
    table_prefix = ""
    table_options = ""

    @abstractmethod
    def create(self, wiki: WikiResources, *, resume: bool) -> dict[str, Any]:
        """Create the database and load the schema template.

        Already complete: return as if created. Exists but is incomplete: with `resume`
        (this operation started creating it earlier) start it over, else raise
        PermanentError, because then it is not ours to change.
        """

    @abstractmethod
    def post_create(self, wiki: WikiResources) -> dict[str, Any]:
        """Run the configured post-create hook (e.g. MediaWiki's install.php); may be a no-op."""

    @abstractmethod
    def archive(self, wiki: WikiResources, sink: BinaryIO) -> dict[str, Any]:
        """Write a consistent dump to `sink`; return {"table_rows": {table: rows}}."""

    @abstractmethod
    def restore(self, wiki: WikiResources, source: BinaryIO) -> dict[str, Any]:
        """Recreate the database from a dump (replacing a partial one); return table_rows."""

    @abstractmethod
    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        """Drop the database; return {"existed": bool}. Missing counts as already purged."""

    @abstractmethod
    def inspect(self, wiki: WikiResources) -> Inspection:
        """exists, bytes, counts {"tables": n, "pages": n (exact)}, and details: last_edit
        (ISO-8601 or None) and table_rows (SQLite, exact) or table_rows_estimate (MariaDB)."""

    @abstractmethod
    def apply_sql(self, wiki: WikiResources, sql: str) -> dict[str, Any]:
        """Run a rendered migration on the wiki's database, statement by statement, and on
        no other database: {"statements": n}. A statement that fails raises PermanentError
        naming its number and an excerpt (a retry could run the earlier ones twice)."""

    def choose_cluster(self, cluster_loads: dict[str, int]) -> str:
        """Name the cluster a new wiki goes to, given wiki counts per known cluster."""
        return "default"

    @abstractmethod
    def location(self, wiki: WikiResources) -> dict[str, str]:
        """Where MediaWiki finds the database (the export's `database`): type, name,
        cluster, and its server or folder; never credentials."""


class StorageDriver(ABC):
    """A storage namespace per wiki (`wikis/<id>/`). Archive and backup files go through
    the archive storage (provisioning/sinks.py); purge removes `archives/<id>/` here too, for
    farms whose archives lived in the driver's bucket before."""

    kind = "storage"

    @abstractmethod
    def create(self, wiki: WikiResources) -> dict[str, Any]:
        """Create the namespace with a marker object holding `wiki.metadata`."""

    @abstractmethod
    def archive(self, wiki: WikiResources) -> dict[str, Any]:
        """Inventory the namespace (files stay in place): {"objects": n, "bytes": n}."""

    @abstractmethod
    def restore(self, wiki: WikiResources) -> dict[str, Any]:
        """Make the namespace live again after unarchive (marker present); inventory."""

    @abstractmethod
    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        """Delete every object (all versions) under the namespace and the wiki's archives.

        Returns {"objects_deleted": n, "archive_objects_deleted": n}.
        """

    @abstractmethod
    def inspect(self, wiki: WikiResources) -> Inspection:
        """exists (marker), bytes, counts {"objects": n, "archive_objects": n}."""

    @abstractmethod
    def location(self, wiki: WikiResources) -> dict[str, str]:
        """Where MediaWiki finds the namespace (the export's `storage`): no credentials."""

    @abstractmethod
    def put_file(self, wiki: WikiResources, relative_path: str, data: bytes) -> None:
        """Store a file in the wiki's namespace (uploads; used by demos and tests)."""

    @abstractmethod
    def copy_files(self, source: WikiResources, target: WikiResources) -> dict[str, Any]:
        """Copy every file of `source`'s namespace (not its marker) into `target`'s, which
        exists: {"objects": n, "bytes": n}. A clone's files; idempotent (overwrites)."""


class SearchDriver(ABC):
    """The wiki's documents in the shared search indices, told apart by `wiki_id`."""

    kind = "search"
    indices: tuple[str, ...] = ("wikipage", "specialpage", "repofile")

    @abstractmethod
    def create(self, wiki: WikiResources) -> dict[str, Any]:
        """Ensure the shared indices exist with a mapping where wiki_id is a keyword."""

    @abstractmethod
    def index(self, wiki: WikiResources, documents: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Add or replace documents: {"index": name, "id": str, "source": {...}}."""

    @abstractmethod
    def archive(self, wiki: WikiResources, sink: BinaryIO) -> dict[str, Any]:
        """Write the wiki's documents as NDJSON (one document per line): {"documents": n}."""

    @abstractmethod
    def restore(self, wiki: WikiResources, source: BinaryIO) -> dict[str, Any]:
        """Index the documents of an NDJSON export again: {"documents": n}."""

    @abstractmethod
    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        """Delete the wiki's documents from every shared index: {"documents_deleted": n}."""

    @abstractmethod
    def inspect(self, wiki: WikiResources) -> Inspection:
        """exists (any document), counts {index: n}."""


def iter_ndjson(source: BinaryIO) -> Iterator[dict[str, Any]]:
    """Yield the documents of an NDJSON stream without reading it whole."""
    import json

    for line_number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError as exc:
            raise PermanentError(f"search export line {line_number} is not JSON: {exc}") from exc
