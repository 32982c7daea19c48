"""The embedded search driver: one SQLite file shared by every wiki, like the shared indices.

Documents have the OpenSearch driver's shape, `{"index": name, "id": str, "source": {...}}`,
and are told apart by `source.wiki_id` exactly as in the shared OpenSearch indices. Each call
opens its own connection (WAL mode, busy timeout), so web processes and workers can use the
store at the same time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from provisioning.drivers.base import (
    Inspection,
    PermanentError,
    SearchDriver,
    TransientError,
    WikiResources,
    iter_ndjson,
)

# The primary key leads with wiki_id and goes on in export order, so purge, inspect and the
# ordered export of one wiki all read a single range of it and never sort.
STORE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS documents ("
    " index_name TEXT NOT NULL, wiki_id TEXT NOT NULL, doc_id TEXT NOT NULL,"
    " source TEXT NOT NULL, PRIMARY KEY (wiki_id, index_name, doc_id))",
)
# A document id is unique per wiki and index: the OpenSearch driver stores `<wiki>:<id>` as
# the shared index's _id for the same reason, so two wikis never overwrite each other.
UPSERT = (
    "INSERT INTO documents (index_name, wiki_id, doc_id, source) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (wiki_id, index_name, doc_id) DO UPDATE SET source = excluded.source"
)
BATCH_SIZE = 500


class LocalSearchDriver(SearchDriver):
    busy_timeout_seconds = 30.0

    def __init__(self, *, path: str | Path) -> None:
        self.path = Path(path)

    def create(self, wiki: WikiResources) -> dict[str, Any]:
        with self._connection():
            pass  # opening the store creates the file and the table
        return {"indices": list(self.indices)}

    def index(self, wiki: WikiResources, documents: Iterable[dict[str, Any]]) -> dict[str, Any]:
        rows = (self._document_row(wiki, document, n) for n, document in enumerate(documents, 1))
        indexed = 0
        with self._connection() as connection:
            # One transaction per batch keeps the store's write lock short for other wikis.
            for batch in _batches(rows, BATCH_SIZE):
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(UPSERT, batch)
                connection.execute("COMMIT")
                indexed += len(batch)
        return {"documents": indexed}

    def archive(self, wiki: WikiResources, sink: BinaryIO) -> dict[str, Any]:
        per_index = dict.fromkeys(self.indices, 0)
        query = (
            "SELECT index_name, doc_id, source FROM documents WHERE wiki_id = ? "
            "ORDER BY index_name, doc_id"
        )
        with self._connection() as connection:
            # In WAL mode one SELECT reads one snapshot, however long the export streams.
            for index_name, doc_id, source in connection.execute(query, (wiki.wiki_id,)):
                document = {"index": index_name, "id": doc_id, "source": json.loads(source)}
                sink.write(json.dumps(document, ensure_ascii=False).encode("utf-8") + b"\n")
                per_index[index_name] = per_index.get(index_name, 0) + 1
        return {"documents": sum(per_index.values()), "per_index": per_index}

    def restore(self, wiki: WikiResources, source: BinaryIO) -> dict[str, Any]:
        # Indexed batch by batch as the export streams in; a bad line fails the restore
        # after the batches before it, which a retry (an upsert of the same ids) redoes.
        return self.index(wiki, iter_ndjson(source))

    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        with self._connection() as connection:
            deleted = connection.execute(
                "DELETE FROM documents WHERE wiki_id = ?", (wiki.wiki_id,)
            ).rowcount
        return {"documents_deleted": deleted}

    def inspect(self, wiki: WikiResources) -> Inspection:
        counts = dict.fromkeys(self.indices, 0)
        size = 0
        query = (
            "SELECT index_name, COUNT(*), SUM(LENGTH(CAST(source AS BLOB))) FROM documents "
            "WHERE wiki_id = ? GROUP BY index_name"
        )
        with self._connection() as connection:
            for index_name, documents, index_bytes in connection.execute(query, (wiki.wiki_id,)):
                counts[index_name] = documents
                size += index_bytes
        return Inspection(exists=sum(counts.values()) > 0, bytes=size, counts=counts)

    # -- helpers ------------------------------------------------------------------------

    def _document_row(
        self, wiki: WikiResources, document: Any, position: int
    ) -> tuple[str, str, str, str]:
        """Validate one document and give its row; source.wiki_id is set to the wiki's."""
        if not isinstance(document, dict):
            raise PermanentError(f"search document {position} is not an object")
        index_name, doc_id, source = (
            document.get("index"),
            document.get("id"),
            document.get("source"),
        )
        if index_name not in self.indices:
            raise PermanentError(
                f"search document {position} names index {index_name!r}, not one of {self.indices}"
            )
        if not isinstance(doc_id, str) or not doc_id:
            raise PermanentError(f"search document {position} has id {doc_id!r}, not a string")
        if not isinstance(source, dict):
            raise PermanentError(f"search document {position} has no source object")
        owner = source.get("wiki_id", wiki.wiki_id)
        if owner != wiki.wiki_id:
            raise PermanentError(
                f"search document {position} ({index_name}/{doc_id}) belongs to wiki "
                f"{owner!r}, not {wiki.wiki_id!r}"
            )
        try:
            text = json.dumps({**source, "wiki_id": wiki.wiki_id}, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"search document {position} is not JSON: {exc}") from exc
        return index_name, wiki.wiki_id, doc_id, text

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection of this call only, to the store with its table in place."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout_seconds, isolation_level=None
            )
        except (OSError, sqlite3.OperationalError) as exc:
            raise TransientError(f"search store {self.path} cannot be opened: {exc}") from exc
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")  # durable enough under WAL
            for statement in STORE_SCHEMA:
                connection.execute(statement)
            yield connection
        except sqlite3.OperationalError as exc:  # locked, busy, disk full, I/O
            raise TransientError(f"search store {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # corrupt or not a database
            raise PermanentError(f"search store {self.path}: {exc}") from exc
        finally:
            connection.close()


def _batches(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
