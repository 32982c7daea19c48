"""A MariaDB database per wiki, through mysqlclient (MySQLdb) and the server's own dump tool.

Admin credentials come only from the connection URL (`FARM_DB_URL`, or one URL per cluster
in `FARM_DB_CLUSTERS`). A wiki's database lives on the cluster named in `wiki.cluster`.
Database names are checked against `DATABASE_NAME_RE` again here and always quoted, and
nothing is dropped whose name was not derived from the `WikiResources` given.

Dump format 2 (what `archive` writes): `mariadb-dump` (mariadb-client) run without a shell,
its credentials in a private option file, its output framed by two lines of our own:

    -- wiki-farm-portal mariadb-dump 2
    /*!40101 SET NAMES binary */;
    DROP TABLE IF EXISTS `page`;
    CREATE TABLE `page` (
      ...
    ) ENGINE=InnoDB DEFAULT CHARSET=binary;
    INSERT INTO `page` VALUES (1,0,'Main_Page',...);
    -- end of dump: 58 tables

The tool reads one snapshot (`--single-transaction`) and writes one row per INSERT line
(`--skip-extended-insert`; values are escaped, so no row holds a raw line break), which
is how `archive` counts each table's rows of that snapshot as the lines pass, without a
query of its own. With `--default-character-set=binary` every value travels as its stored
bytes. The end line is written only after the tool exited 0. `restore` accepts only the
statement kinds the tool writes for base tables, on unqualified names in the wiki's own
database, with literal values only, and sends consecutive rows of a table as multi-row
INSERTs of about `INSERT_BATCH_BYTES`. A database with views, triggers or routines is
refused: the dump holds base tables only.

Dump format 1, written by this driver's earlier Python dumper, still restores: one
statement per line, `CREATE TABLE` and `INSERT INTO` only, every value a number or a hex
literal, and the same end line.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import unquote, urlsplit

import MySQLdb
import MySQLdb.cursors
from MySQLdb.constants import ER

from provisioning.drivers.base import (
    DATABASE_NAME_RE,
    DatabaseDriver,
    Inspection,
    PermanentError,
    TransientError,
    WikiResources,
    hook_argv,
)
from provisioning.drivers.schema import (
    mediawiki_timestamp,
    render_schema,
    schema_tables,
    split_statements,
)

# MediaWiki's own default $wgDBTableOptions: binary strings, whatever the server defaults to.
TABLE_OPTIONS = "ENGINE=InnoDB, DEFAULT CHARSET=binary"
DUMP_HEADER = b"-- wiki-farm-portal mariadb-dump 2\n"
FORMAT_1_HEADER = b"-- wiki-farm-portal mariadb dump 1\n"
DUMP_FOOTER_PREFIX = b"-- end of dump: "
DUMP_TOOL = "mariadb-dump"
DUMP_TOOL_OPTIONS = (
    "--single-transaction",  # one consistent snapshot, and no table locks
    "--quick",  # rows stream through the tool, never a whole table in its memory
    "--skip-extended-insert",  # one row per line: rows are counted as lines
    "--default-character-set=binary",  # values as their stored bytes, converted nowhere
    # Restore loads into a database it has just created: dropping each table first, or
    # DISABLE KEYS (which InnoDB ignores), would cost a statement per table for nothing.
    "--skip-add-drop-table",
    "--skip-disable-keys",
    "--skip-comments",
    "--skip-add-locks",
    "--skip-lock-tables",
    "--no-tablespaces",
    "--skip-triggers",
)
INSERT_BATCH_BYTES = 1024 * 1024
SINK_WRITE_BYTES = 1024 * 1024  # the tool's lines reach the sink in chunks of about this
ERROR_TAIL_CHARS = 2000
CONNECT_TIMEOUT_SECONDS = 10
HOOK_TIMEOUT_SECONDS = 600

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
# How the dump tool names a server error: `Got error: 2013: ...`, `Error 2013: ...`, `(2013)`.
TOOL_ERROR_CODE_RE = re.compile(r"(?:[Ee]rror:? |\()([0-9]{4})\b")

# -- what a dump may hold ----------------------------------------------------------------
TABLE_NAME = rb"`((?:[^`]|``)+)`"
LITERAL = (
    rb"(?:NULL|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|0x[0-9A-Fa-f]+"
    rb"|'[^'\\]*(?:\\.[^'\\]*)*')"
)
# The values of one row, as the tool writes them: literals only, so no expression, function
# call or subquery can reach beyond the row.
ROW_VALUES_RE = re.compile(rb"\(" + LITERAL + rb"(?:," + LITERAL + rb")*\)", re.DOTALL)
# Session settings the tool saves, sets and restores around a dump; nothing global.
SESSION_VARIABLE = (
    rb"(?i:character_set_client|character_set_results|collation_connection|time_zone"
    rb"|unique_checks|foreign_key_checks|sql_mode|sql_notes)"
)
SET_ASSIGNMENT = (
    rb"(?:NAMES \w+|(?:@\w+|" + SESSION_VARIABLE + rb") *= *(?:@@?\w+|'[\w,:+-]*'|\w+))"
)
TOOL_STATEMENT_RES = {
    "create": re.compile(rb"CREATE TABLE " + TABLE_NAME + rb" \(\n.*;\n", re.DOTALL),
    "drop": re.compile(rb"DROP TABLE IF EXISTS " + TABLE_NAME + rb";\n"),
    "keys": re.compile(
        rb"/\*!40000 ALTER TABLE " + TABLE_NAME + rb" (?:DISABLE|ENABLE) KEYS \*/;\n"
    ),
    "lock": re.compile(rb"LOCK TABLES " + TABLE_NAME + rb" WRITE;\n"),
    "unlock": re.compile(rb"UNLOCK TABLES;\n"),
    "set": re.compile(
        rb"/\*!\d{5} SET " + SET_ASSIGNMENT + rb"(?:, " + SET_ASSIGNMENT + rb")* \*/;\n"
    ),
    # For the mariadb command-line client only: it then refuses shell escapes in the dump.
    "client": re.compile(rb"/\*M!999999\\- enable the sandbox mode \*/ ?\n"),
    "blank": re.compile(rb"\s*"),
    "end": re.compile(re.escape(DUMP_FOOTER_PREFIX) + rb"([0-9]+) tables\n"),
}
QUOTED_TOKEN_RE = re.compile(
    rb"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`", re.DOTALL
)
# In a definition whose strings and quoted names are masked: `db`.`t`, db.t, and the words
# that make a table read another table, a file or a server.
QUALIFIED_NAME_RE = re.compile(rb"`\s*\.|\.\s*`|[A-Za-z_$][\w$]*\s*\.\s*[A-Za-z_$]")
OUTSIDE_WORD_RE = re.compile(rb"\b(SELECT|DIRECTORY|CONNECTION)\b", re.IGNORECASE)
ENGINE_RE = re.compile(rb"\bENGINE\s*=\s*(\w+)", re.IGNORECASE)
RESTORABLE_ENGINES = {b"innodb", b"aria", b"myisam", b"memory"}
FORMAT_1_STATEMENT_RE = re.compile(rb"^(?:CREATE TABLE|INSERT INTO) `(?:[^`]|``)+` ")
# A migration runs in the wiki's database only.
OTHER_DATABASE_STATEMENT_RE = re.compile(
    r"^\s*(?:USE\b|(?:CREATE|DROP|ALTER)\s+(?:DATABASE|SCHEMA)\b)", re.IGNORECASE
)


class MariaDBDatabaseDriver(DatabaseDriver):
    """One database per wiki on one of the configured MariaDB clusters."""

    engine = "mariadb"
    table_options = TABLE_OPTIONS

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
        with self._cursor(wiki, database) as cursor:
            if not _database_exists(cursor, database):
                raise PermanentError(f"database {database} does not exist, nothing to archive")
            _refuse_unsupported_objects(cursor, database)
        sink.write(DUMP_HEADER)
        table_rows = self._run_dump_tool(wiki, database, sink)
        # Only now is the dump known to be complete: the tool exited 0.
        sink.write(DUMP_FOOTER_PREFIX + f"{len(table_rows)} tables\n".encode())
        return {"table_rows": table_rows, "tables": len(table_rows)}

    def restore(self, wiki: WikiResources, source: BinaryIO) -> dict[str, Any]:
        database = _database_name(wiki)
        # Read before anything is dropped: a file of another kind replaces nothing.
        header = source.readline()
        loaders = {DUMP_HEADER: _load_tool_dump, FORMAT_1_HEADER: _load_format_1_dump}
        load = loaders.get(header)
        if load is None:
            raise PermanentError(
                f"database {database}: not a dump of a known format ({header[:60]!r})"
            )
        with self._cursor(wiki, database) as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(database)}")
            cursor.execute(f"CREATE DATABASE {quote_identifier(database)} CHARACTER SET binary")
            cursor.execute(f"USE {quote_identifier(database)}")
            # As mysqldump does: keep rows whose AUTO_INCREMENT column is 0, load tables in
            # any order, and take back values the source server accepted.
            cursor.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
            cursor.execute("SET SESSION foreign_key_checks = 0")
            load(cursor, database, source)
            # A dump sets the session's character set (to binary); MySQLdb reads utf8mb4.
            cursor.execute("SET NAMES utf8mb4")
            table_rows = _count_rows(cursor, database)
        return {"table_rows": table_rows, "tables": len(table_rows)}

    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        database = _database_name(wiki)
        with self._cursor(wiki, database) as cursor:
            existed = _database_exists(cursor, database)
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(database)}")
        return {"existed": existed}

    def inspect(self, wiki: WikiResources) -> Inspection:
        """Cheap enough for every wiki of a large farm: sizes and row counts are the
        server's statistics, and only the page count is exact (the page table is small
        next to revision and text, and the farm's size classes are counted in pages)."""
        database = _database_name(wiki)
        page_table = f"{self.table_prefix}page"
        revision_table = f"{self.table_prefix}revision"
        with self._cursor(wiki, database) as cursor:
            if not _database_exists(cursor, database):
                return Inspection(exists=False)
            cursor.execute(
                "SELECT TABLE_NAME, COALESCE(TABLE_ROWS, 0),"
                " COALESCE(DATA_LENGTH + INDEX_LENGTH, 0) FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                (database,),
            )
            statistics = cursor.fetchall()
            estimates = {_text(name): int(rows) for name, rows, _ in statistics}
            counts = {"tables": len(estimates)}
            if page_table in estimates:
                counts["pages"] = _exact_rows(cursor, database, page_table)
            last_edit = None
            if revision_table in estimates:
                last_edit = _last_edit(cursor, database, revision_table)
        return Inspection(
            exists=True,
            bytes=sum(int(size) for *_, size in statistics),
            counts=counts,
            details={"table_rows_estimate": estimates, "last_edit": last_edit},
        )

    def apply_sql(self, wiki: WikiResources, sql: str) -> dict[str, Any]:
        database = _database_name(wiki)
        statements = list(split_statements(sql))
        for number, statement in enumerate(statements, start=1):
            if OTHER_DATABASE_STATEMENT_RE.match(statement):
                raise PermanentError(
                    f"database {database}: migration statement {number} ({_excerpt(statement)})"
                    " would leave the wiki's database; nothing was run"
                )
        with self._cursor(wiki, database) as cursor:
            if not _database_exists(cursor, database):
                raise PermanentError(f"database {database} does not exist, nothing to migrate")
            cursor.execute(f"USE {quote_identifier(database)}")
            for number, statement in enumerate(statements, start=1):
                _run_migration_statement(cursor, database, number, statement)
        return {"statements": len(statements)}

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
    def _cursor(self, wiki: WikiResources, database: str) -> Iterator[MySQLdb.cursors.Cursor]:
        """A cursor on an autocommit connection, MySQLdb errors turned into driver errors."""
        params = self._cluster_params(wiki)
        with translate_errors(database):
            connection = MySQLdb.connect(
                **params,
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                # One statement per execute: text from a dump or a migration can never
                # smuggle a second one behind a `;`.
                multi_statements=False,
            )
            try:
                cursor = connection.cursor()
                cursor.execute(f"SET SESSION lock_wait_timeout = {self.lock_wait_timeout}")
                cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {self.lock_wait_timeout}")
                yield cursor
            finally:
                connection.close()

    def _run_dump_tool(self, wiki: WikiResources, database: str, sink: BinaryIO) -> dict[str, int]:
        """Stream mariadb-dump's output into `sink`; return each table's rows as counted.

        The tool's session keeps the server's net_write_timeout (it cannot set session
        variables): a sink that stalls that long (60 s by default) loses the connection,
        which is a TransientError. The archive sinks are local files and spools.
        """
        options = _client_options(self._cluster_params(wiki))
        with _private_file(options) as options_path, tempfile.TemporaryFile() as stderr:
            # --defaults-file comes first and is the only option file read, so neither the
            # password (never on argv) nor an operator's ~/.my.cnf changes what is dumped.
            argv = [DUMP_TOOL, f"--defaults-file={options_path}", *DUMP_TOOL_OPTIONS, database]
            try:
                process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
                )
            except OSError as exc:
                raise PermanentError(
                    f"database {database}: {DUMP_TOOL} cannot run (install mariadb-client): {exc}"
                ) from exc
            with process:
                try:
                    table_rows = _copy_tool_dump(cast(BinaryIO, process.stdout), sink, database)
                except BaseException:
                    process.kill()  # it would block on a pipe nobody reads
                    raise
            if process.returncode != 0:
                stderr.seek(0)
                raise _dump_tool_error(database, process.returncode, stderr.read())
        return table_rows


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
        code, message = _error_code(exc), _error_message(exc)
        where = f" while {doing}" if doing else ""
        text = f"database {database}: MariaDB error {code}{where}: {message}"
        if code in TRANSIENT_ERROR_CODES:
            raise TransientError(text) from exc
        raise PermanentError(text) from exc


def _error_code(exc: MySQLdb.Error) -> int | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def _error_message(exc: MySQLdb.Error) -> str:
    return exc.args[1] if len(exc.args) > 1 else str(exc)


def _excerpt(statement: str | bytes, limit: int = 80) -> str:
    text = statement.decode("utf-8", "replace") if isinstance(statement, bytes) else statement
    return " ".join(text.split())[:limit]


def _text(name: str | bytes) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else name


# -- create, inspect, migrate ----------------------------------------------------------


def _database_exists(cursor: MySQLdb.cursors.Cursor, database: str) -> bool:
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,)
    )
    return bool(int(cursor.fetchone()[0]))


def _existing_tables(cursor: MySQLdb.cursors.Cursor, database: str) -> set[str] | None:
    """The base tables of `database`, or None when there is no such database."""
    if not _database_exists(cursor, database):
        return None
    return set(_base_tables(cursor, database))


def _base_tables(cursor: MySQLdb.cursors.Cursor, database: str) -> list[str]:
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (database,),
    )
    return [_text(name) for (name,) in cursor.fetchall()]


def _run_schema(cursor: MySQLdb.cursors.Cursor, database: str, schema: str) -> None:
    for number, statement in enumerate(split_statements(schema), start=1):
        with translate_errors(
            database, f"loading schema statement {number} ({_excerpt(statement)})"
        ):
            cursor.execute(statement)


def _run_migration_statement(
    cursor: MySQLdb.cursors.Cursor, database: str, number: int, statement: str
) -> None:
    try:
        cursor.execute(statement)
    except MySQLdb.Error as exc:
        # Permanent even for a lock wait: DDL commits as it goes, so a retry would run the
        # statements before this one a second time.
        raise PermanentError(
            f"database {database}: migration statement {number} ({_excerpt(statement)}) "
            f"failed with MariaDB error {_error_code(exc)}: {_error_message(exc)}"
        ) from exc


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
        tail = result.stderr.decode("utf-8", "replace")[-ERROR_TAIL_CHARS:].strip()
        raise PermanentError(
            f"database {database}: post-create hook exited with {result.returncode}: {tail}"
        )


def _exact_rows(cursor: MySQLdb.cursors.Cursor, database: str, table: str) -> int:
    qualified_table = f"{quote_identifier(database)}.{quote_identifier(table)}"
    cursor.execute(f"SELECT COUNT(*) FROM {qualified_table}")  # noqa: S608 - quoted
    return int(cursor.fetchone()[0])


def _count_rows(cursor: MySQLdb.cursors.Cursor, database: str) -> dict[str, int]:
    """Exact row counts per base table (information_schema only estimates them)."""
    return {table: _exact_rows(cursor, database, table) for table in _base_tables(cursor, database)}


def _last_edit(cursor: MySQLdb.cursors.Cursor, database: str, revision_table: str) -> str | None:
    """The newest revision's time; rev_timestamp is indexed, so this reads one index entry."""
    qualified_table = f"{quote_identifier(database)}.{quote_identifier(revision_table)}"
    try:
        cursor.execute(f"SELECT MAX(rev_timestamp) FROM {qualified_table}")  # noqa: S608
    except MySQLdb.Error as exc:
        if _error_code(exc) == ER.BAD_FIELD_ERROR:  # a revision table, but not MediaWiki's
            return None
        raise
    return mediawiki_timestamp(cursor.fetchone()[0])


# -- archive ---------------------------------------------------------------------------


def _refuse_unsupported_objects(cursor: MySQLdb.cursors.Cursor, database: str) -> None:
    """A dump without the views, triggers or routines would lose them silently."""
    # TRIGGERS by EVENT_OBJECT_SCHEMA (a trigger lives in its table's schema): the server
    # looks up that schema only, where TRIGGER_SCHEMA reads every schema's triggers.
    cursor.execute(
        "SELECT (SELECT COUNT(*) FROM information_schema.TABLES "
        "        WHERE TABLE_SCHEMA = %s AND TABLE_TYPE <> 'BASE TABLE'),"
        "       (SELECT COUNT(*) FROM information_schema.TRIGGERS"
        "        WHERE EVENT_OBJECT_SCHEMA = %s),"
        "       (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s)",
        (database, database, database),
    )
    views, triggers, routines = (int(n) for n in cursor.fetchone())
    if views or triggers or routines:
        raise PermanentError(
            f"database {database} has {views} views, {triggers} triggers and {routines} "
            "routines; the dump holds base tables only"
        )


def _client_options(params: dict[str, Any]) -> str:
    """The connection parameters as an option file for the MariaDB client tools."""
    return (
        "[client]\n"
        f"host={_option_value(str(params['host']))}\n"
        f"port={int(params['port'])}\n"
        f"user={_option_value(params['user'])}\n"
        f"password={_option_value(params['password'])}\n"
    )


def _option_value(value: str) -> str:
    # Double quotes keep `#` and spaces; inside them the client unescapes \\ \" and \n.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@contextmanager
def _private_file(content: str) -> Iterator[str]:
    """A temporary file only this user can read (mkstemp makes it 0600), removed after."""
    descriptor, path = tempfile.mkstemp(prefix="wiki-farm-", suffix=".cnf")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(content)
        yield path
    finally:
        os.unlink(path)


def _copy_tool_dump(output: BinaryIO, sink: BinaryIO, database: str) -> dict[str, int]:
    """Copy the tool's statements to `sink` in large writes, counting INSERT lines."""
    table_rows: dict[str, int] = {}
    chunk: list[bytes] = []
    chunk_bytes = 0
    for number, kind, table, statement in _tool_statements(output, database):
        if kind == "insert":
            table_rows[table] += 1
        elif kind == "create":
            table_rows[table] = 0
        elif kind == "end":  # ours alone: a tool line like it would end the restore early
            raise _refused(database, number, statement)
        chunk.append(statement)
        chunk_bytes += len(statement)
        if chunk_bytes >= SINK_WRITE_BYTES:
            sink.write(b"".join(chunk))
            chunk, chunk_bytes = [], 0
    sink.write(b"".join(chunk))
    return table_rows


def _dump_tool_error(database: str, returncode: int, stderr: bytes) -> Exception:
    tail = stderr.decode("utf-8", "replace")[-ERROR_TAIL_CHARS:].strip()
    text = f"database {database}: {DUMP_TOOL} exited with {returncode}: {tail}"
    codes = {int(code) for code in TOOL_ERROR_CODE_RE.findall(tail)}
    # A negative code is a signal from outside (we kill it only after an error of our own).
    if returncode < 0 or codes & TRANSIENT_ERROR_CODES:
        return TransientError(text)
    return PermanentError(text)


# -- reading a dump of the tool --------------------------------------------------------


def _tool_statements(
    lines: Iterable[bytes], database: str, *, first_line: int = 1
) -> Iterator[tuple[int, str, str, bytes]]:
    """(line number, kind, table, statement) for every statement the tool wrote; anything
    else is refused. INSERT lines are of the table created last, one row each."""
    table = ""
    insert_prefix = b"\0"  # matches no line before the first CREATE TABLE
    pending: list[bytes] = []  # the lines of a CREATE TABLE, the one statement that spans lines
    for number, line in enumerate(lines, start=first_line):
        if not line.endswith(b"\n"):
            raise PermanentError(f"database {database}: dump is truncated (line {number} is cut)")
        if not pending and line.startswith(insert_prefix):
            if not line.endswith(b");\n"):
                raise _refused(database, number, line)
            yield number, "insert", table, line
            continue
        if pending or line.startswith(b"CREATE TABLE "):
            pending.append(line)
            if not line.endswith(b";\n"):
                continue
            line, pending = b"".join(pending), []
        kind, name = _statement_kind(line, database, number)
        if kind == "create":
            table, insert_prefix = name, _insert_prefix(name)
        if kind != "blank":
            yield number, kind, name or table, line
    if pending:
        raise PermanentError(f"database {database}: dump is truncated inside a CREATE TABLE")


def _statement_kind(statement: bytes, database: str, number: int) -> tuple[str, str]:
    """The kind of a statement the tool writes, and the table it names ("" for none)."""
    for kind, pattern in TOOL_STATEMENT_RES.items():
        match = pattern.fullmatch(statement)
        if match is None:
            continue
        if kind == "create":
            _check_table_definition(statement, database, number)
        named = match.group(1) if kind in {"create", "drop", "keys", "lock"} else b""
        return kind, named.replace(b"``", b"`").decode("utf-8", "surrogateescape")
    raise _refused(database, number, statement)


def _check_table_definition(statement: bytes, database: str, number: int) -> None:
    """Refuse a CREATE TABLE that could read from beyond the wiki's own database."""
    masked = QUOTED_TOKEN_RE.sub(
        lambda m: b"`x`" if m.group(0).startswith(b"`") else b"''", statement
    )
    reason = ""
    if QUALIFIED_NAME_RE.search(masked):
        reason = "it names another database's object"
    elif word := OUTSIDE_WORD_RE.search(masked):
        reason = f"it uses {word.group(1).decode().upper()}"
    elif engines := {e.lower() for e in ENGINE_RE.findall(masked)} - RESTORABLE_ENGINES:
        reason = f"engine {b', '.join(sorted(engines)).decode()} is not restorable here"
    if reason:
        raise PermanentError(
            f"database {database}: dump line {number} is refused: {reason} ({_excerpt(statement)})"
        )


def _insert_prefix(table: str) -> bytes:
    statement = f"INSERT INTO {quote_identifier(table)} VALUES "  # noqa: S608 - quoted
    return statement.encode("utf-8", "surrogateescape")


def _refused(database: str, number: int, statement: bytes) -> PermanentError:
    return PermanentError(
        f"database {database}: dump line {number} is not a statement mariadb-dump writes "
        f"for base tables ({statement[:60]!r})"
    )


# -- restore ---------------------------------------------------------------------------


def _load_tool_dump(cursor: MySQLdb.cursors.Cursor, database: str, source: BinaryIO) -> None:
    """Execute a format-2 dump; refuse it unless its end line comes, after every table."""
    lines = iter(source)
    rows = _InsertBatch(cursor, database)
    tables_created = 0
    for number, kind, table, statement in _tool_statements(lines, database, first_line=2):
        if kind == "insert":
            rows.add(number, table, statement)
            continue
        rows.flush()
        if kind == "end":
            _check_dump_end(database, statement, tables_created, lines)
            return
        tables_created += kind == "create"
        if kind != "client":
            with translate_errors(database, f"restoring dump line {number}"):
                cursor.execute(statement)
    raise PermanentError(f"database {database}: dump is truncated (no end line)")


def _check_dump_end(
    database: str, end_line: bytes, tables_created: int, rest: Iterator[bytes]
) -> None:
    match = TOOL_STATEMENT_RES["end"].fullmatch(end_line)
    declared = int(match.group(1)) if match else -1
    if declared != tables_created:
        raise PermanentError(
            f"database {database}: dump ends claiming {declared} tables, but {tables_created} "
            "were in it"
        )
    if any(line.strip() for line in rest):
        raise PermanentError(f"database {database}: dump has lines after its end")


class _InsertBatch:
    """Consecutive rows of one table, sent as one multi-row INSERT of about
    INSERT_BATCH_BYTES: one round trip per batch instead of one per row."""

    def __init__(self, cursor: MySQLdb.cursors.Cursor, database: str) -> None:
        self.cursor, self.database = cursor, database
        self.table, self.prefix = "", b""
        self.rows: list[bytes] = []
        self.size = 0
        self.first_line = 0

    def add(self, number: int, table: str, line: bytes) -> None:
        if table != self.table:
            self.flush()
            self.table, self.prefix = table, _insert_prefix(table)
        elif self.size >= INSERT_BATCH_BYTES:
            self.flush()
        values = line[len(self.prefix) : -2]  # the row's `(...)`, without `;\n`
        if not ROW_VALUES_RE.fullmatch(values):
            raise PermanentError(
                f"database {self.database}: dump line {number} holds more than literal values "
                f"({line[:60]!r})"
            )
        if not self.rows:
            self.first_line = number
        self.rows.append(values)
        self.size += len(values)

    def flush(self) -> None:
        if not self.rows:
            return
        last_line = self.first_line + len(self.rows) - 1
        with translate_errors(self.database, f"restoring dump lines {self.first_line}-{last_line}"):
            self.cursor.execute(self.prefix + b",".join(self.rows))
        self.rows, self.size = [], 0


def _load_format_1_dump(cursor: MySQLdb.cursors.Cursor, database: str, source: BinaryIO) -> None:
    """Execute a dump of the earlier Python dumper line by line; refuse an incomplete one."""
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
        if not FORMAT_1_STATEMENT_RE.match(statement) or not statement.endswith(b";"):
            raise PermanentError(
                f"database {database}: dump line {number} is not a restorable statement "
                f"({statement[:60]!r})"
            )
        with translate_errors(database, f"restoring dump line {number}"):
            cursor.execute(statement)
    if not complete:
        raise PermanentError(f"database {database}: dump is truncated (no end line)")
