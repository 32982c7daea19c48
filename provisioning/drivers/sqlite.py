"""The embedded database driver: one SQLite file per wiki under a root folder.

A database file is only ever published whole: it is built as `<name>.sqlite.partial` and
renamed into place, so "the file exists" always means "the schema (or the dump) was loaded
completely". A crash leaves at most a `.partial` file, which the next attempt removes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from provisioning.drivers.base import (
    DATABASE_NAME_RE,
    DatabaseDriver,
    Inspection,
    PermanentError,
    TransientError,
    WikiResources,
    hook_argv,
)
from provisioning.drivers.files import fsync_directory, fsync_file
from provisioning.drivers.schema import (
    mediawiki_timestamp,
    render_schema,
    schema_tables,
    split_statements,
)

# Files SQLite may keep beside a database; a stale one would be replayed into a new file of
# the same name, so they go whenever the database file is replaced or removed.
SIDECAR_SUFFIXES = ("-journal", "-wal", "-shm")
PARTIAL_SUFFIX = ".partial"
# The framing lines `Connection.iterdump()` writes; restore runs its own transaction.
DUMP_BEGIN = "BEGIN TRANSACTION;"
DUMP_COMMIT = "COMMIT;"
HOOK_OUTPUT_TAIL = 2000


class SQLiteDatabaseDriver(DatabaseDriver):
    engine = "sqlite"
    table_options = ""  # SQLite takes none; the placeholder becomes nothing
    busy_timeout_seconds = 30.0
    post_create_timeout_seconds = 600.0

    def __init__(
        self,
        *,
        root: str | Path,
        schema_sql: str | Path,
        table_prefix: str = "",
        post_create_hook: str = "",
    ) -> None:
        self.root = Path(root)
        self.schema_sql = Path(schema_sql)
        self.table_prefix = table_prefix
        self.post_create_hook = post_create_hook

    # -- the contract -------------------------------------------------------------------

    def create(self, wiki: WikiResources, *, resume: bool) -> dict[str, Any]:
        path = self.database_path(wiki)
        schema = render_schema(
            self.schema_sql, table_prefix=self.table_prefix, table_options=self.table_options
        )
        expected = schema_tables(schema)
        if path.exists():
            missing = self._missing_tables(path, expected)
            if not missing:
                return {"created": False, "tables": len(expected), "path": str(path)}
            if not resume:
                raise PermanentError(
                    f"database file {path} exists without tables {missing[:5]}: "
                    "it was not created by this operation, so it is left alone"
                )
        self._publish(path, split_statements(schema))
        return {"created": True, "tables": len(expected), "path": str(path)}

    def post_create(self, wiki: WikiResources) -> dict[str, Any]:
        if not self.post_create_hook.strip():
            return {"hook": "skipped"}
        argv = self._hook_argv(wiki)
        started = time.monotonic()
        try:
            completed = subprocess.run(  # noqa: S603 - argv from settings, no shell
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.post_create_timeout_seconds,
                check=False,
            )
        except FileNotFoundError as exc:
            raise PermanentError(f"post-create hook {argv[0]!r} not found") from exc
        except subprocess.TimeoutExpired as exc:
            raise PermanentError(
                f"post-create hook {argv[0]!r} ran over {self.post_create_timeout_seconds:g} s; "
                f"stderr: {_tail(exc.stderr)}"
            ) from exc
        if completed.returncode != 0:
            raise PermanentError(
                f"post-create hook {argv[0]!r} exited with {completed.returncode}; "
                f"stderr: {_tail(completed.stderr)}"
            )
        return {
            "hook": "ran",
            "command": argv[0],
            "seconds": round(time.monotonic() - started, 3),
            "stdout_tail": _tail(completed.stdout),
        }

    def archive(self, wiki: WikiResources, sink: BinaryIO) -> dict[str, Any]:
        path = self.database_path(wiki)
        if not path.exists():
            raise PermanentError(f"database file {path} does not exist: nothing to archive")
        # One read transaction over the live file rather than the backup API into a copy:
        # the wiki is read-only while it is archived, so holding the shared lock for the
        # dump costs nothing, and it saves writing the whole database a second time.
        with self._connection(path, read_only=True) as connection:
            connection.execute("BEGIN")
            table_rows = _table_rows(connection)  # the first read fixes the snapshot
            # A full-text table (MediaWiki's searchindex after install.php) keeps its rows in
            # shadow tables, which the dump holds; its own rows cannot be inserted before the
            # restored schema is reloaded, and need not be.
            virtual_rows = tuple(
                f'INSERT INTO "{name.replace(chr(34), chr(34) * 2)}" VALUES('
                for name in _virtual_tables(connection)
            )
            for statement in connection.iterdump():
                if virtual_rows and statement.startswith(virtual_rows):
                    continue
                sink.write(statement.encode("utf-8") + b"\n")
            connection.execute("COMMIT")
        return {"table_rows": table_rows, "tables": len(table_rows)}

    def restore(self, wiki: WikiResources, source: BinaryIO) -> dict[str, Any]:
        path = self.database_path(wiki)
        table_rows = self._publish(path, _dump_statements(source))
        return {"table_rows": table_rows, "tables": len(table_rows)}

    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        path = self.database_path(wiki)
        existed = path.exists()
        partial = _sibling(path, PARTIAL_SUFFIX)
        for leftover in (path, partial, *_sidecars(path), *_sidecars(partial)):
            _remove(leftover)
        return {"existed": existed}

    def inspect(self, wiki: WikiResources) -> Inspection:
        path = self.database_path(wiki)
        if not path.exists():
            return Inspection(exists=False)
        revision_table = f"{self.table_prefix}revision"
        with self._connection(path, read_only=True) as connection:
            table_rows = _table_rows(connection)
            last_edit = (
                _last_edit(connection, revision_table) if revision_table in table_rows else None
            )
        counts = {"tables": len(table_rows)}
        page_table = f"{self.table_prefix}page"
        if page_table in table_rows:
            counts["pages"] = table_rows[page_table]
        return Inspection(
            exists=True,
            bytes=path.stat().st_size,
            counts=counts,
            details={"table_rows": table_rows, "last_edit": last_edit},
        )

    def apply_sql(self, wiki: WikiResources, sql: str) -> dict[str, Any]:
        path = self.database_path(wiki)
        if not path.exists():
            raise PermanentError(f"database file {path} does not exist: nothing to migrate")
        statements = list(split_statements(sql))
        with self._connection(path, read_only=False) as connection:
            # One transaction (SQLite's DDL is transactional too): a migration that fails
            # leaves the file as it was, and closing without COMMIT rolls it back.
            connection.execute("BEGIN IMMEDIATE")
            for number, statement in enumerate(statements, start=1):
                try:
                    connection.execute(statement)
                except sqlite3.Error as exc:
                    raise PermanentError(
                        f"database file {path}: migration statement {number} "
                        f"({_shorten(' '.join(statement.split()), 80)}) failed: {exc}; "
                        "nothing of the migration was kept"
                    ) from exc
            connection.execute("COMMIT")
        return {"statements": len(statements)}

    def location(self, wiki: WikiResources) -> dict[str, str]:
        # MediaWiki opens <$wgSQLiteDataDir>/<$wgDBname>.sqlite, as database_path names it.
        return {
            "type": self.engine,
            "name": wiki.database_name,
            "cluster": wiki.cluster,
            "dir": str(self.root.resolve()),
        }

    # -- names --------------------------------------------------------------------------

    def database_path(self, wiki: WikiResources) -> Path:
        """`<root>/<database_name>.sqlite`, refusing any name that could leave the root."""
        name = wiki.database_name
        if not DATABASE_NAME_RE.fullmatch(name):
            raise PermanentError(
                f"database name {name!r} breaks the rule {DATABASE_NAME_RE.pattern}"
            )
        root = self.root.resolve()
        path = (root / f"{name}.sqlite").resolve()
        if path.parent != root:
            raise PermanentError(f"database file {path} is not directly inside {root}")
        return path

    def _hook_argv(self, wiki: WikiResources) -> list[str]:
        values = {
            "{wiki}": wiki.wiki_id,
            "{dbname}": wiki.database_name,
            "{path}": str(self.database_path(wiki)),
        }
        return hook_argv(self.post_create_hook, values)

    # -- building and publishing a file -------------------------------------------------

    def _publish(self, path: Path, statements: Iterable[str]) -> dict[str, int]:
        """Build `path` from statements in a partial file, then rename it into place."""
        partial = _sibling(path, PARTIAL_SUFFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (partial, *_sidecars(partial)):
            _remove(stale)
        try:
            table_rows = self._load(partial, statements)
            fsync_file(partial)
            for stale in _sidecars(path):
                _remove(stale)
            os.replace(partial, path)
            fsync_directory(path.parent)
        except BaseException:
            for stale in (partial, *_sidecars(partial)):
                _remove(stale)
            raise
        return table_rows

    def _load(self, partial: Path, statements: Iterable[str]) -> dict[str, int]:
        with self._connection(partial, read_only=False) as connection:
            # No journal and no syncs while loading: a failed load throws the whole partial
            # file away, and _publish fsyncs it once before the rename.
            connection.execute("PRAGMA journal_mode=OFF")
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute("BEGIN")
            for statement in statements:
                try:
                    connection.execute(statement)
                except sqlite3.Error as exc:
                    raise PermanentError(
                        f"statement failed ({exc}): {_shorten(statement)}"
                    ) from exc
            connection.execute("COMMIT")
        # A new connection: one that restored a virtual table's schema row does not see it.
        with self._connection(partial, read_only=True) as connection:
            return _table_rows(connection)

    @contextlib.contextmanager
    def _connection(self, path: Path, *, read_only: bool) -> Iterator[sqlite3.Connection]:
        # A read-only URI never creates a missing file as a side effect of looking at it.
        target = f"{path.as_uri()}?mode=ro" if read_only else f"{path.as_uri()}?mode=rwc"
        try:
            connection = sqlite3.connect(
                target, uri=True, timeout=self.busy_timeout_seconds, isolation_level=None
            )
        except sqlite3.OperationalError as exc:
            raise TransientError(f"database file {path} cannot be opened: {exc}") from exc
        try:
            yield connection
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise TransientError(f"database file {path} is busy: {exc}") from exc
            raise PermanentError(f"database file {path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise PermanentError(f"database file {path}: {exc}") from exc
        finally:
            connection.close()

    def _missing_tables(self, path: Path, expected: list[str]) -> list[str]:
        try:
            with self._connection(path, read_only=True) as connection:
                present = set(_table_names(connection))
        except PermanentError:
            return list(expected)  # not a database at all: as incomplete as it gets
        return [table for table in expected if table not in present]


# -- helpers ----------------------------------------------------------------------------


def _virtual_tables(connection: sqlite3.Connection) -> list[str]:
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND sql LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"
    )
    return [row[0] for row in connection.execute(query)]


def _table_names(connection: sqlite3.Connection) -> list[str]:
    """User tables by name, SQLite's own sqlite_* tables left out."""
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    )
    return [row[0] for row in connection.execute(query)]


def _table_rows(connection: sqlite3.Connection) -> dict[str, int]:
    return {name: _count_rows(connection, name) for name in _table_names(connection)}


def _count_rows(connection: sqlite3.Connection, table: str) -> int:
    quoted = '"' + table.replace('"', '""') + '"'
    return connection.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0]  # noqa: S608


def _last_edit(connection: sqlite3.Connection, revision_table: str) -> str | None:
    quoted = '"' + revision_table.replace('"', '""') + '"'
    query = f"SELECT MAX(rev_timestamp) FROM {quoted}"  # noqa: S608 - quoted
    try:
        newest = connection.execute(query).fetchone()[0]
    except sqlite3.OperationalError:  # a revision table, but not MediaWiki's
        return None
    return mediawiki_timestamp(newest)


def _dump_statements(source: BinaryIO) -> Iterator[str]:
    """The statements of an iterdump() stream, without its own BEGIN/COMMIT framing.

    Lines are joined until they make a complete statement, so newlines inside quoted values
    survive. A dump without its closing COMMIT was cut short and is refused.
    """
    buffered = ""
    committed = False
    for line_number, raw in enumerate(source, start=1):
        try:
            buffered += raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PermanentError(f"database dump line {line_number} is not UTF-8") from exc
        if not sqlite3.complete_statement(buffered):
            continue
        statement, buffered = buffered.strip(), ""
        if committed:
            raise PermanentError(f"database dump has statements after COMMIT (line {line_number})")
        if statement == DUMP_BEGIN:
            continue
        if statement == DUMP_COMMIT:
            committed = True
            continue
        yield statement
    if buffered.strip():
        raise PermanentError(f"database dump ends inside a statement: {_shorten(buffered)}")
    if not committed:
        raise PermanentError("database dump has no closing COMMIT: it was cut short")


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _sidecars(path: Path) -> list[Path]:
    return [_sibling(path, suffix) for suffix in SIDECAR_SUFFIXES]


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _tail(output: bytes | str | None) -> str:
    if not output:
        return ""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    return text[-HOOK_OUTPUT_TAIL:].strip()


def _shorten(statement: str, limit: int = 200) -> str:
    return statement if len(statement) <= limit else statement[:limit] + "..."
