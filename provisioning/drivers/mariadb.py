"""A MariaDB database per wiki, through mysqlclient (MySQLdb).

Admin credentials come only from the connection URL (`FARM_DB_URL`, or one URL per cluster
in `FARM_DB_CLUSTERS`). A wiki's database lives on the cluster named in `wiki.cluster`.
Database names are checked against `DATABASE_NAME_RE` again here and always quoted, and
nothing is dropped whose name was not derived from the `WikiResources` given.

Dump format (what `archive` writes and `restore` reads), plain UTF-8 text, one line each:

    -- wiki-farm-portal mariadb dump 1
    CREATE TABLE `page` (...) ENGINE=InnoDB DEFAULT CHARSET=binary;
    INSERT INTO `page` (`page_id`,`page_title`,...) VALUES (1,X'4d61696e',...),(...);
    -- end of dump: 6 tables

Every statement is on a single line ending in `;`, so both sides stream it line by line.
That holds because no value carries a raw line break: numbers are written as the server's
own text, binary strings (and BIT, temporal values) as hex literals `X'..'`, character
strings as `_utf8mb4 X'..'` (which also makes quoting and backslash escaping moot), and the
line breaks of `SHOW CREATE TABLE` are layout only (it escapes those inside strings as
`\\n`). An INSERT holds at most `INSERT_BATCH_ROWS` rows and about `INSERT_BATCH_BYTES`,
but always one whole row: a row whose hex text exceeds the restoring server's
`max_allowed_packet` (16 MiB by default, so a value over about 8 MiB) cannot be restored.
`restore` runs only `CREATE TABLE` and `INSERT INTO` statements on unqualified table names
and requires the end line, so a truncated dump fails instead of restoring half a wiki.
Only base tables are dumped: a database with views, triggers or routines is refused.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import unquote, urlsplit

import MySQLdb
import MySQLdb.cursors
from MySQLdb.constants import FIELD_TYPE, FLAG

from provisioning.drivers.base import (
    DATABASE_NAME_RE,
    DatabaseDriver,
    Inspection,
    PermanentError,
    TransientError,
    WikiResources,
    hook_argv,
)
from provisioning.drivers.schema import render_schema, schema_tables, split_statements

# MediaWiki's own default $wgDBTableOptions: binary strings, whatever the server defaults to.
TABLE_OPTIONS = "ENGINE=InnoDB, DEFAULT CHARSET=binary"
DUMP_HEADER = b"-- wiki-farm-portal mariadb dump 1\n"
DUMP_FOOTER_PREFIX = b"-- end of dump: "
INSERT_BATCH_ROWS = 500
INSERT_BATCH_BYTES = 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 10
HOOK_TIMEOUT_SECONDS = 600
# A streamed dump waits on the sink (an upload, say); the server must not give up on us.
DUMP_NET_WRITE_TIMEOUT_SECONDS = 3600

# Error codes worth retrying: the server is away, busy or lost the connection, or the
# statement waited on a lock. Everything else will fail the same way next time.
TRANSIENT_ERROR_CODES = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout (row locks, and metadata locks under lock_wait_timeout)
    1213,  # deadlock
    1927,  # connection was killed
    2002,  # cannot connect through the socket
    2003,  # cannot connect to the server
    2006,  # server has gone away
    2013,  # lost connection during query
}
NUMERIC_TYPES = {
    FIELD_TYPE.DECIMAL,
    FIELD_TYPE.NEWDECIMAL,
    FIELD_TYPE.TINY,
    FIELD_TYPE.SHORT,
    FIELD_TYPE.LONG,
    FIELD_TYPE.INT24,
    FIELD_TYPE.LONGLONG,
    FIELD_TYPE.FLOAT,
    FIELD_TYPE.DOUBLE,
    FIELD_TYPE.YEAR,
}
NUMBER_TEXT_RE = re.compile(rb"^-?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?$")
RESTORABLE_STATEMENT_RE = re.compile(rb"^(?:CREATE TABLE|INSERT INTO) `(?:[^`]|``)+` ")


class MariaDBDatabaseDriver(DatabaseDriver):
    """One database per wiki on one of the configured MariaDB clusters."""

    engine = "mariadb"

    def __init__(
        self,
        *,
        url: str,
        clusters: dict[str, str] | None = None,
        schema_sql: str | Path,
        table_prefix: str = "",
        post_create_hook: str = "",
        lock_wait_timeout: int = 60,
    ) -> None:
        # With no clusters configured the single URL is the cluster "default"; with
        # clusters, they name every cluster a wiki can live on (the URL is still checked).
        default_cluster = {"default": _connection_params(url)}
        self.clusters = (
            {name: _connection_params(u) for name, u in clusters.items()}
            if clusters
            else default_cluster
        )
        self.schema_sql = schema_sql
        self.table_prefix = table_prefix
        self.post_create_hook = post_create_hook
        # The server's default is a day: DROP DATABASE behind a long transaction would hang.
        self.lock_wait_timeout = int(lock_wait_timeout)

    # -- lifecycle ---------------------------------------------------------------------

    def create(self, wiki: WikiResources, *, resume: bool) -> dict[str, Any]:
        database = _database_name(wiki)
        schema = render_schema(
            self.schema_sql, table_prefix=self.table_prefix, table_options=TABLE_OPTIONS
        )
        tables = schema_tables(schema)
        with self._cursor(wiki, database) as cursor:
            existing = _existing_tables(cursor, database)
            if existing is not None:
                if set(tables) <= existing:
                    return {"created": False, "tables": len(tables)}
                if not resume:
                    raise PermanentError(
                        f"database {database} already exists and was not created by this operation"
                    )
                cursor.execute(f"DROP DATABASE {quote_identifier(database)}")
            cursor.execute(f"CREATE DATABASE {quote_identifier(database)} CHARACTER SET binary")
            cursor.execute(f"USE {quote_identifier(database)}")
            _run_schema(cursor, database, schema)
            missing = set(tables) - (_existing_tables(cursor, database) or set())
        if missing:
            raise PermanentError(f"database {database}: schema left out tables {sorted(missing)}")
        return {"created": True, "tables": len(tables)}

    def post_create(self, wiki: WikiResources) -> dict[str, Any]:
        database = _database_name(wiki)
        if not self.post_create_hook.strip():
            return {"hook": "skipped"}
        command = hook_argv(self.post_create_hook, {"{wiki}": wiki.wiki_id, "{dbname}": database})
        started = time.monotonic()
        _run_hook(command, database)
        return {"hook": "ran", "seconds": round(time.monotonic() - started, 3)}

    def archive(self, wiki: WikiResources, sink: BinaryIO) -> dict[str, Any]:
        database = _database_name(wiki)
        with self._cursor(wiki, database, raw=True) as cursor:
            if _existing_tables(cursor, database) is None:
                raise PermanentError(f"database {database} does not exist, nothing to archive")
            cursor.execute(f"USE {quote_identifier(database)}")
            cursor.execute(f"SET SESSION net_write_timeout = {DUMP_NET_WRITE_TIMEOUT_SECONDS}")
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            # Read only: closing the connection ends the snapshot, even after a failed write.
            table_rows = _dump_database(cursor, database, sink)
        return {"table_rows": table_rows, "tables": len(table_rows)}

    def restore(self, wiki: WikiResources, source: BinaryIO) -> dict[str, Any]:
        database = _database_name(wiki)
        with self._cursor(wiki, database) as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(database)}")
            cursor.execute(f"CREATE DATABASE {quote_identifier(database)} CHARACTER SET binary")
            cursor.execute(f"USE {quote_identifier(database)}")
            # As mysqldump does: keep rows whose AUTO_INCREMENT column is 0, load tables in
            # any order, and take back values the source server accepted.
            cursor.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
            cursor.execute("SET SESSION foreign_key_checks = 0")
            _load_dump(cursor, database, source)
            table_rows = _count_rows(cursor, database)
        return {"table_rows": table_rows, "tables": len(table_rows)}

    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        database = _database_name(wiki)
        with self._cursor(wiki, database) as cursor:
            existed = _existing_tables(cursor, database) is not None
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(database)}")
        return {"existed": existed}

    def inspect(self, wiki: WikiResources) -> Inspection:
        database = _database_name(wiki)
        with self._cursor(wiki, database) as cursor:
            if _existing_tables(cursor, database) is None:
                return Inspection(exists=False)
            cursor.execute(
                "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) "
                "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                (database,),
            )
            size = int(cursor.fetchone()[0])
            table_rows = _count_rows(cursor, database)
        counts = {"tables": len(table_rows)}
        page_table = f"{self.table_prefix}page"
        if page_table in table_rows:
            counts["pages"] = table_rows[page_table]
        return Inspection(
            exists=True, bytes=size, counts=counts, details={"table_rows": table_rows}
        )

    def location(self, wiki: WikiResources) -> dict[str, str]:
        location = {"type": self.engine, "name": wiki.database_name, "cluster": wiki.cluster}
        params = self.clusters.get(wiki.cluster)
        if params is not None:
            location["host"] = f"{params['host']}:{params['port']}"
        return location

    def choose_cluster(self, cluster_loads: dict[str, int]) -> str:
        """The configured cluster holding the fewest wikis; ties go to the first by name."""
        return min(self.clusters, key=lambda name: (cluster_loads.get(name, 0), name))

    # -- connections -------------------------------------------------------------------

    def _cluster_params(self, wiki: WikiResources) -> dict[str, Any]:
        try:
            return self.clusters[wiki.cluster]
        except KeyError:
            raise PermanentError(
                f"database {wiki.database_name}: cluster {wiki.cluster!r} is not configured "
                f"(known: {sorted(self.clusters)})"
            ) from None

    @contextmanager
    def _cursor(
        self, wiki: WikiResources, database: str, *, raw: bool = False
    ) -> Iterator[MySQLdb.cursors.Cursor]:
        """A cursor on an autocommit connection, MySQLdb errors turned into driver errors.

        `raw` returns every value as the server's bytes (no conversion, no decoding): what
        a dump must write back.
        """
        params = self._cluster_params(wiki)
        options: dict[str, Any] = {"use_unicode": False, "conv": {}} if raw else {}
        with translate_errors(database):
            connection = MySQLdb.connect(
                **params,
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                **options,
            )
            try:
                cursor = connection.cursor()
                cursor.execute(f"SET SESSION lock_wait_timeout = {self.lock_wait_timeout}")
                cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {self.lock_wait_timeout}")
                yield cursor
            finally:
                connection.close()


# -- names and errors ------------------------------------------------------------------


def quote_identifier(name: str) -> str:
    """Quote a database, table or column name for MariaDB."""
    return "`" + name.replace("`", "``") + "`"


def _database_name(wiki: WikiResources) -> str:
    """The wiki's database name, checked again before any SQL is built from it."""
    name = wiki.database_name
    if not isinstance(name, str) or not DATABASE_NAME_RE.fullmatch(name):
        raise PermanentError(
            f"database name {name!r} breaks the rule {DATABASE_NAME_RE.pattern}; refused"
        )
    return name


def _connection_params(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in {"mysql", "mariadb"} or not parts.hostname:
        raise PermanentError(
            f"database URL must look like mysql://user:password@host:port/, not {parts.scheme}://"
        )
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }


@contextmanager
def translate_errors(database: str, doing: str = "") -> Iterator[None]:
    """Turn a MySQLdb error into TransientError or PermanentError naming the database."""
    try:
        yield
    except MySQLdb.Error as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        where = f" while {doing}" if doing else ""
        text = f"database {database}: MariaDB error {code}{where}: {message}"
        if code in TRANSIENT_ERROR_CODES:
            raise TransientError(text) from exc
        raise PermanentError(text) from exc


# -- create ----------------------------------------------------------------------------


def _existing_tables(cursor: MySQLdb.cursors.Cursor, database: str) -> set[str] | None:
    """The base tables of `database`, or None when there is no such database."""
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,)
    )
    if not int(cursor.fetchone()[0]):
        return None
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
        (database,),
    )
    return {_text(name) for (name,) in cursor.fetchall()}


def _run_schema(cursor: MySQLdb.cursors.Cursor, database: str, schema: str) -> None:
    for number, statement in enumerate(split_statements(schema), start=1):
        excerpt = " ".join(statement.split())[:80]
        with translate_errors(database, f"loading schema statement {number} ({excerpt})"):
            cursor.execute(statement)


def _run_hook(command: list[str], database: str) -> None:
    try:
        # The operator's own command, split into words and run without a shell.
        result = subprocess.run(  # noqa: S603
            command, capture_output=True, timeout=HOOK_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TransientError(
            f"database {database}: post-create hook timed out after {HOOK_TIMEOUT_SECONDS}s"
        ) from exc
    except OSError as exc:
        raise PermanentError(f"database {database}: post-create hook cannot run: {exc}") from exc
    if result.returncode != 0:
        tail = result.stderr.decode("utf-8", "replace")[-2000:].strip()
        raise PermanentError(
            f"database {database}: post-create hook exited with {result.returncode}: {tail}"
        )


# -- archive ---------------------------------------------------------------------------


def _dump_database(cursor: MySQLdb.cursors.Cursor, database: str, sink: BinaryIO) -> dict[str, int]:
    """Write every base table of the current database; the caller holds the snapshot."""
    _refuse_unsupported_objects(cursor, database)
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (database,),
    )
    tables = [_text(name) for (name,) in cursor.fetchall()]
    sink.write(DUMP_HEADER)
    table_rows = {}
    for table in tables:
        with translate_errors(database, f"dumping table {table}"):
            sink.write(_create_table_line(cursor, table))
            table_rows[table] = _dump_rows(cursor, database, table, sink)
    sink.write(DUMP_FOOTER_PREFIX + f"{len(tables)} tables\n".encode())
    return table_rows


def _refuse_unsupported_objects(cursor: MySQLdb.cursors.Cursor, database: str) -> None:
    """A dump without the views, triggers or routines would lose them silently."""
    cursor.execute(
        "SELECT (SELECT COUNT(*) FROM information_schema.TABLES "
        "        WHERE TABLE_SCHEMA = %s AND TABLE_TYPE <> 'BASE TABLE'),"
        "       (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s),"
        "       (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s)",
        (database, database, database),
    )
    views, triggers, routines = (int(n) for n in cursor.fetchone())
    if views or triggers or routines:
        raise PermanentError(
            f"database {database} has {views} views, {triggers} triggers and {routines} "
            "routines; the dump holds base tables only"
        )


def _create_table_line(cursor: MySQLdb.cursors.Cursor, table: str) -> bytes:
    cursor.execute(f"SHOW CREATE TABLE {quote_identifier(table)}")
    create_statement = cursor.fetchone()[1]
    # Line breaks inside quoted strings come back escaped; the rest are layout.
    return create_statement.replace(b"\n", b" ") + b";\n"


def _dump_rows(cursor: MySQLdb.cursors.Cursor, database: str, table: str, sink: BinaryIO) -> int:
    """Stream one table's rows as batched INSERTs; return how many rows were written."""
    columns = ",".join(quote_identifier(c) for c in _stored_columns(cursor, database, table))
    quoted_table = quote_identifier(table)
    # Identifiers cannot be bound as parameters; they are quoted instead (hence the noqa).
    select = f"SELECT {columns} FROM {quoted_table}"  # noqa: S608
    insert_prefix = f"INSERT INTO {quoted_table} ({columns}) VALUES ".encode()  # noqa: S608
    rows_written = 0
    # A server-side cursor: rows arrive as they are written, never the whole table at once.
    stream = cursor.connection.cursor(MySQLdb.cursors.SSCursor)
    try:
        stream.execute(select)
        for batch in _encoded_row_batches(stream):
            sink.write(insert_prefix + b",".join(batch) + b";\n")
            rows_written += len(batch)
    finally:
        stream.close()
    return rows_written


def _encoded_row_batches(stream: MySQLdb.cursors.SSCursor) -> Iterator[list[bytes]]:
    """Rows as `(v1,v2,...)`, in batches of INSERT_BATCH_ROWS rows or INSERT_BATCH_BYTES."""
    encoders = [
        _value_encoder(column[1], flags)
        # Both are set by the SELECT that opened the stream; the stubs allow None before it.
        for column, flags in zip(
            cast(tuple, stream.description), cast(tuple, stream.description_flags), strict=True
        )
    ]
    batch: list[bytes] = []
    batch_bytes = 0
    while rows := stream.fetchmany(INSERT_BATCH_ROWS):
        for row in rows:
            values = b",".join(encode(v) for encode, v in zip(encoders, row, strict=True))
            batch.append(b"(" + values + b")")
            batch_bytes += len(values) + 2
            if len(batch) >= INSERT_BATCH_ROWS or batch_bytes >= INSERT_BATCH_BYTES:
                yield batch
                batch, batch_bytes = [], 0
    if batch:
        yield batch


def _stored_columns(cursor: MySQLdb.cursors.Cursor, database: str, table: str) -> list[str]:
    """Columns a dump must carry; generated columns are computed again on restore."""
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND IS_GENERATED = 'NEVER' "
        "ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    return [_text(name) for (name,) in cursor.fetchall()]


def _value_encoder(field_type: int, flags: int) -> Callable[[bytes | None], bytes]:
    """How to write one column's raw values as SQL literals that fit on one line."""
    if field_type in NUMERIC_TYPES:
        return _number_literal
    if field_type == FIELD_TYPE.BIT or flags & FLAG.BINARY:
        return _binary_literal
    return _character_literal


def _number_literal(value: bytes | None) -> bytes:
    if value is None:
        return b"NULL"
    if not NUMBER_TEXT_RE.fullmatch(value):
        raise PermanentError(f"unexpected numeric text {value[:40]!r} in dump")
    return value


def _binary_literal(value: bytes | None) -> bytes:
    return b"NULL" if value is None else b"X'" + value.hex().encode() + b"'"


def _character_literal(value: bytes | None) -> bytes:
    # The connection's character set is utf8mb4, so that is what the bytes are in.
    return b"NULL" if value is None else b"_utf8mb4 X'" + value.hex().encode() + b"'"


def _text(name: str | bytes) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else name


# -- restore ---------------------------------------------------------------------------


def _load_dump(cursor: MySQLdb.cursors.Cursor, database: str, source: BinaryIO) -> None:
    """Execute a dump line by line; refuse anything but a complete dump of this format."""
    header = source.readline()
    if header != DUMP_HEADER:
        raise PermanentError(f"database {database}: not a dump of this format ({header[:60]!r})")
    complete = False
    for number, line in enumerate(source, start=2):
        statement = line.rstrip(b"\n")
        if complete:
            if statement.strip():
                raise PermanentError(f"database {database}: dump line {number} after its end")
            continue
        if statement.startswith(DUMP_FOOTER_PREFIX):
            complete = True
            continue
        if not RESTORABLE_STATEMENT_RE.match(statement) or not statement.endswith(b";"):
            raise PermanentError(
                f"database {database}: dump line {number} is not a restorable statement "
                f"({statement[:60]!r})"
            )
        with translate_errors(database, f"restoring dump line {number}"):
            cursor.execute(statement)
    if not complete:
        raise PermanentError(f"database {database}: dump is truncated (no end line)")


def _count_rows(cursor: MySQLdb.cursors.Cursor, database: str) -> dict[str, int]:
    """Exact row counts per base table (information_schema only estimates them)."""
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (database,),
    )
    tables = [_text(name) for (name,) in cursor.fetchall()]
    table_rows = {}
    for table in tables:
        qualified_table = f"{quote_identifier(database)}.{quote_identifier(table)}"
        cursor.execute(f"SELECT COUNT(*) FROM {qualified_table}")  # noqa: S608 - quoted
        table_rows[table] = int(cursor.fetchone()[0])
    return table_rows
