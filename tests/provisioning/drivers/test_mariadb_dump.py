"""The MariaDB driver's dumps against the real server: the mariadb-dump format (2), the
format the earlier Python dumper wrote (1), and what restore refuses.

Databases are named and dropped by test_mariadb's fixtures; a test user made here is
dropped by the test that made it.
"""

import io
import os
import secrets
import stat
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import MySQLdb
import pytest

from provisioning.drivers import mariadb
from provisioning.drivers.base import PermanentError, TransientError
from provisioning.drivers.mariadb import DUMP_HEADER
from tests.provisioning.drivers import test_mariadb as shared
from tests.services import service_unavailable

# Fixtures shared with test_mariadb, bound here (assignments, not imports: see swift_server).
admin = shared.admin
new_wiki = shared.new_wiki
make_driver = shared.make_driver
FORMAT_1_DUMP = Path(__file__).with_name("mariadb_dump_format_1.sql")
PREFIX = shared.PREFIX


def insert_lines(dump: bytes) -> dict[str, int]:
    """Rows per table as the dump holds them: one INSERT line each."""
    counts: dict[str, int] = {}
    for line in dump.split(b"\n"):
        if line.startswith(b"CREATE TABLE `"):
            counts[line.split(b"`")[1].decode()] = 0
        elif line.startswith(b"INSERT INTO `"):
            counts[line.split(b"`")[1].decode()] += 1
    return counts


def tool_dump(*statements: bytes, tables: int = 1) -> bytes:
    return DUMP_HEADER + b"".join(statements) + f"-- end of dump: {tables} tables\n".encode()


CREATE_T = b"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n"


# -- format 2: round trips ----------------------------------------------------------------


@pytest.mark.mariadb
def test_round_trip_of_mediawikis_own_schema_with_awkward_rows(admin, new_wiki):
    if not shared.MEDIAWIKI_SCHEMA.exists():
        service_unavailable("Debian's mediawiki is not installed (.ci/install-mediawiki.sh)")
    driver = make_driver(schema_sql=shared.MEDIAWIKI_SCHEMA, table_prefix="")
    wiki = new_wiki()
    driver.create(wiki, resume=False)
    database = wiki.database_name
    admin.execute(f"USE `{database}`")
    admin.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
    admin.executemany(
        "INSERT INTO page (page_id, page_namespace, page_title, page_random, page_touched,"
        " page_latest, page_len, page_lang) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (0, 0, b"Zero_id", 0.5, b"20240101000000", 0, 0, None),
            (1, 0, "Zoë_😀_東京".encode(), 1e-300, b"20240101000000", 1, 3, b"en"),
        ],
    )
    admin.execute("SET SESSION sql_mode = DEFAULT")
    texts = [
        bytes(range(256)) * 4,  # every byte value, \0 \n \r ' \\ and \x1a among them
        b"== Heading ==\nline two; with 'quotes' and \"doubles\"\r\n\nend",
        b"",
        b"\xff\xfe not UTF-8 at all",
    ]
    admin.executemany(
        "INSERT INTO text (old_text, old_flags) VALUES (%s, 'utf-8')", [(t,) for t in texts]
    )
    admin.execute(
        "INSERT INTO revision (rev_id, rev_page, rev_comment_id, rev_actor, rev_timestamp,"
        " rev_len, rev_parent_id, rev_sha1) VALUES (1, 1, 0, 0, '20240301123456', 3, NULL, '')"
    )
    before = shared.snapshot(admin, database)
    expected_rows = {table: len(rows) for table, (_, rows) in before.items()}
    sink = io.BytesIO()

    archived = driver.archive(wiki, sink)
    driver.purge(wiki)
    restored = driver.restore(wiki, io.BytesIO(sink.getvalue()))

    assert archived == restored == {"table_rows": expected_rows, "tables": 58}
    assert insert_lines(sink.getvalue()) == expected_rows
    assert shared.snapshot(admin, database) == before
    assert driver.inspect(wiki).details["last_edit"] == "2024-03-01T12:34:56+00:00"


@pytest.mark.mariadb
def test_restore_merges_rows_into_few_statements(admin, new_wiki, monkeypatch):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    shared.fill_wiki(admin, wiki.database_name)
    dump = io.BytesIO()
    driver.archive(wiki, dump)
    inserts = []
    real_flush = mariadb._InsertBatch.flush

    def counting_flush(batch):
        if batch.rows:
            inserts.append((batch.table, len(batch.rows)))
        real_flush(batch)

    monkeypatch.setattr(mariadb._InsertBatch, "flush", counting_flush)
    dump.seek(0)
    restored = driver.restore(wiki, dump)

    text_batches = [rows for table, rows in inserts if table == f"{PREFIX}text"]
    assert sum(text_batches) == restored["table_rows"][f"{PREFIX}text"] == 1205
    # 1,205 rows of up to 200 bytes and one of 3 MiB: a handful of statements, not 1,205.
    assert len(text_batches) <= 4


# -- format 2: one snapshot -------------------------------------------------------------


@pytest.mark.mariadb
def test_archive_reads_one_snapshot_while_others_write(admin, new_wiki):
    """Hold the dump at its second table with a lock, write to that table and to later ones
    from other connections, then let it go: none of those rows may be in the dump."""
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    shared.fill_wiki(admin, wiki.database_name)
    database = wiki.database_name
    before = {table: len(rows) for table, (_, rows) in shared.snapshot(admin, database).items()}
    locker, writer = connect(), connect()
    sink = io.BytesIO()
    outcome: dict[str, object] = {}

    def run_archive():
        try:
            outcome["result"] = driver.archive(wiki, sink)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    try:
        # Tables are dumped by name: mw_categorylinks, then mw_page, which waits here.
        locker.cursor().execute(f"LOCK TABLES `{database}`.mw_page WRITE")
        dumping = threading.Thread(target=run_archive)
        dumping.start()
        wait_for_lock_wait(database, "mw_page")
        locker.cursor().execute(
            f"INSERT INTO `{database}`.mw_page (page_namespace, page_title, page_random,"
            " page_touched, page_latest, page_len) VALUES (0, 'Late', 0.5, '20240101000000', 0, 0)"
        )
        for statement in (
            f"INSERT INTO `{database}`.mw_text (old_text, old_flags) VALUES ('late', '')",
            f"INSERT INTO `{database}`.mw_user (user_name, user_password, user_email,"
            " user_touched) VALUES ('Late', '', '', '20240101000000')",
            f"DELETE FROM `{database}`.mw_site_stats",
        ):
            writer.cursor().execute(statement)
        locker.cursor().execute("UNLOCK TABLES")
        dumping.join(timeout=60)
    finally:
        locker.close()
        writer.close()

    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"] == {"table_rows": before, "tables": 6}
    assert insert_lines(sink.getvalue()) == before
    after = shared.snapshot(admin, database)
    assert len(after[f"{PREFIX}page"][1]) == before[f"{PREFIX}page"] + 1
    assert len(after[f"{PREFIX}site_stats"][1]) == 0


def connect() -> MySQLdb.Connection:
    return MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


def wait_for_lock_wait(database: str, table: str, timeout: float = 20.0) -> None:
    """Until a connection of the dump tool waits for `table`'s metadata lock."""
    watcher = connect()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cursor = watcher.cursor()
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE DB = %s AND STATE LIKE 'Waiting for table metadata lock'"
                " AND INFO LIKE %s",
                (database, f"%`{table}`%"),
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    finally:
        watcher.close()
    pytest.fail(f"the dump never waited for {table}")


@pytest.mark.mariadb
def test_archive_refuses_a_database_with_triggers(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    admin.execute(
        f"CREATE TRIGGER `{wiki.database_name}`.page_touch BEFORE UPDATE ON"
        f" `{wiki.database_name}`.mw_page FOR EACH ROW SET NEW.page_len = NEW.page_len"
    )

    with pytest.raises(PermanentError, match="0 views, 1 triggers and 0 routines"):
        driver.archive(wiki, io.BytesIO())


# -- format 2: credentials and the tool's errors ------------------------------------------


@pytest.mark.mariadb
def test_the_password_reaches_the_tool_in_a_private_file_only(admin, new_wiki, monkeypatch):
    wiki = new_wiki()
    make_driver().create(wiki, resume=False)
    user, password = f"farm_t{secrets.token_hex(4)}", "p\"w\\ #; 'x" + secrets.token_hex(4)
    admin.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
    seen = []
    real_popen = subprocess.Popen

    def spying_popen(argv, **options):
        options_path = next(a for a in argv if a.startswith("--defaults-file=")).split("=", 1)[1]
        seen.append((list(argv), stat.S_IMODE(os.stat(options_path).st_mode), options_path))
        return real_popen(argv, **options)

    monkeypatch.setattr(mariadb.subprocess, "Popen", spying_popen)
    try:
        admin.execute(f"GRANT SELECT, SHOW VIEW ON `{wiki.database_name}`.* TO %s@'%%'", (user,))
        url = f"mysql://{user}:{quote(password, safe='')}@127.0.0.1:3306/"
        archived = make_driver(url=url).archive(wiki, io.BytesIO())
    finally:
        admin.execute("DROP USER %s@'%%'", (user,))

    assert archived["tables"] == 6
    ((argv, mode, options_path),) = seen
    assert argv[0] == "mariadb-dump" and argv[1].startswith("--defaults-file=")
    assert not any(password in word for word in argv)
    assert mode == 0o600
    assert not Path(options_path).exists()


@pytest.mark.mariadb
def test_a_server_the_tool_cannot_reach_is_a_transient_error(new_wiki, monkeypatch):
    wiki = new_wiki()
    driver = make_driver()
    driver.create(wiki, resume=False)
    real_options = mariadb._client_options
    monkeypatch.setattr(mariadb, "_client_options", lambda p: real_options({**p, "port": 1}))

    with pytest.raises(TransientError, match="mariadb-dump exited with 2: .*2002"):
        driver.archive(wiki, io.BytesIO())


@pytest.mark.mariadb
def test_a_tool_that_fails_or_is_missing_is_a_permanent_error(new_wiki, monkeypatch):
    wiki = new_wiki()
    driver = make_driver()
    driver.create(wiki, resume=False)

    monkeypatch.setattr(mariadb, "DUMP_TOOL_OPTIONS", ("--no-such-option",))
    with pytest.raises(PermanentError, match="exited with 2: .*no-such-option"):
        driver.archive(wiki, io.BytesIO())
    monkeypatch.setattr(mariadb, "DUMP_TOOL", "/nonexistent/mariadb-dump")
    with pytest.raises(PermanentError, match="cannot run"):
        driver.archive(wiki, io.BytesIO())


@pytest.mark.mariadb
def test_a_sink_that_fails_stops_the_tool(new_wiki, monkeypatch):
    wiki = new_wiki()
    driver = make_driver()
    driver.create(wiki, resume=False)
    monkeypatch.setattr(mariadb, "SINK_WRITE_BYTES", 1)
    processes = []
    real_popen = subprocess.Popen

    def keeping_popen(argv, **options):
        processes.append(real_popen(argv, **options))
        return processes[-1]

    monkeypatch.setattr(mariadb.subprocess, "Popen", keeping_popen)

    class BrokenSink(io.BytesIO):
        def write(self, data):
            if self.tell():
                raise OSError("disk full")
            return super().write(data)

    with pytest.raises(OSError, match="disk full"):
        driver.archive(wiki, BrokenSink())
    assert processes[0].returncode is not None  # killed and reaped, not left behind


@pytest.mark.parametrize(
    ("stderr", "transient"),
    [
        (b"mariadb-dump: Error 2013: Lost connection to server during query when dumping", True),
        (b"mariadb-dump: Couldn't execute 'SHOW CREATE TABLE `x`': Server has gone (2006)", True),
        (b'mariadb-dump: Got error: 1045: "Access denied for user"', False),
        (b"mariadb-dump: Got error: 1049: \"Unknown database 'wiki_x'\"", False),
    ],
)
def test_the_tools_errors_are_classified_like_the_drivers(stderr, transient):
    error = mariadb._dump_tool_error("wiki_x", 2, stderr)

    assert isinstance(error, TransientError if transient else PermanentError)
    assert str(error).startswith("database wiki_x: mariadb-dump exited with 2: mariadb-dump:")


# -- format 2: what restore refuses --------------------------------------------------------


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("dump", "message"),
    [
        (DUMP_HEADER + CREATE_T + b"INSERT INTO `t` VALUES (1);\n", "truncated"),
        (DUMP_HEADER + CREATE_T + b"INSERT INTO `t` VALUES (1", "truncated"),
        (DUMP_HEADER + CREATE_T[:30], "truncated"),
        (tool_dump(b"USE `mysql`;\n", tables=0), "line 2 is not a statement"),
        (tool_dump(b"CREATE DATABASE `other`;\n", tables=0), "line 2 is not a statement"),
        (tool_dump(b"DROP DATABASE `mysql`;\n", tables=0), "line 2 is not a statement"),
        (tool_dump(b"CREATE TABLE `mysql`.`t` (\n  `id` int\n);\n"), "line 4 is not"),
        (tool_dump(CREATE_T, b"INSERT INTO `mysql`.`user` VALUES (1);\n"), "line 6 is not"),
        (tool_dump(CREATE_T, b"INSERT INTO `t` VALUES ((SELECT 1 FROM mysql.user));\n"), "literal"),
        (tool_dump(CREATE_T, b"INSERT INTO `t` VALUES (1); DROP DATABASE mysql;\n"), "line 6 is"),
        (tool_dump(CREATE_T, b"INSERT INTO `t` VALUES (LOAD_FILE('/etc/passwd'));\n"), "literal"),
        (
            tool_dump(b"CREATE TABLE `t` (\n  `id` int REFERENCES `mysql`.`user` (`id`)\n);\n"),
            "names another database",
        ),
        (tool_dump(b"CREATE TABLE `t` (\n  `id` int\n) SELECT * FROM mysql.user;\n"), "another"),
        (tool_dump(b"CREATE TABLE `t` (\n  `id` int\n) AS SELECT 1 AS `id`;\n"), "SELECT"),
        (tool_dump(b"CREATE TABLE `t` (\n  `id` int\n) DATA DIRECTORY='/tmp';\n"), "DIRECTORY"),
        (tool_dump(b"CREATE TABLE `t` (\n  `id` int\n) ENGINE=CONNECT;\n"), "engine connect"),
        (tool_dump(b"/*!40101 SET GLOBAL general_log = 1 */;\n", tables=0), "not a statement"),
        (tool_dump(b"/*!40101 SET @@global.max_connections = 1 */;\n", tables=0), "not a"),
        (tool_dump(b"INSERT INTO `t` VALUES (1);\n", tables=0), "not a statement"),
        (tool_dump(CREATE_T, tables=2), "claiming 2 tables, but 1"),
        (tool_dump(CREATE_T) + b"INSERT INTO `t` VALUES (1);\n", "after its end"),
    ],
    ids=[
        "no-end-line",
        "cut-in-a-row",
        "cut-in-create",
        "use",
        "create-database",
        "drop-database",
        "qualified-create",
        "qualified-insert",
        "subquery",
        "second-statement",
        "function-call",
        "qualified-reference",
        "create-select-qualified",
        "create-select",
        "data-directory",
        "engine",
        "set-global",
        "set-global-variable",
        "insert-before-create",
        "wrong-table-count",
        "after-end",
    ],
)
def test_restore_refuses_anything_the_tool_does_not_write(admin, new_wiki, dump, message):
    wiki = new_wiki()

    with pytest.raises(PermanentError, match=message):
        make_driver().restore(wiki, io.BytesIO(dump))
    assert shared.database_exists(admin, "mysql")
    admin.execute("SELECT COUNT(*) FROM mysql.user WHERE User = 'root'")
    assert admin.fetchone()[0] >= 1


@pytest.mark.mariadb
def test_a_truncated_archive_of_a_real_wiki_is_refused(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    shared.fill_wiki(admin, wiki.database_name)
    sink = io.BytesIO()
    driver.archive(wiki, sink)
    dump = sink.getvalue()

    for cut in (len(dump) - 1, dump.rindex(b"-- end of dump"), len(dump) // 2):
        with pytest.raises(PermanentError, match="truncated"):
            driver.restore(wiki, io.BytesIO(dump[:cut]))


@pytest.mark.mariadb
def test_restore_takes_the_statements_a_plain_tool_dump_has(admin, new_wiki):
    """DROP TABLE, LOCK TABLES and DISABLE KEYS are what mariadb-dump writes by default."""
    wiki = new_wiki()
    dump = tool_dump(
        b"/*M!999999\\- enable the sandbox mode */ \n",
        b"/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n",
        b"/*!40101 SET NAMES binary */;\n",
        b"/*!40103 SET TIME_ZONE='+00:00' */;\n",
        b"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n",
        b"DROP TABLE IF EXISTS `t`;\n",
        b"/*!40101 SET @saved_cs_client     = @@character_set_client */;\n",
        b"/*!40101 SET character_set_client = utf8mb4 */;\n",
        b"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `v` varbinary(20) DEFAULT 'a.b',\n"
        b"  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=binary COMMENT='x;\\ny';\n",
        b"/*!40101 SET character_set_client = @saved_cs_client */;\n",
        b"\n",
        b"LOCK TABLES `t` WRITE;\n",
        b"/*!40000 ALTER TABLE `t` DISABLE KEYS */;\n",
        b"INSERT INTO `t` VALUES (0,'a\\0b\\n\\'');\n",
        b"INSERT INTO `t` VALUES (1,NULL);\n",
        b"INSERT INTO `t` VALUES (2,-1.5e-3);\n",
        b"/*!40000 ALTER TABLE `t` ENABLE KEYS */;\n",
        b"UNLOCK TABLES;\n",
        b"/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n",
    )

    restored = make_driver().restore(wiki, io.BytesIO(dump))

    assert restored == {"table_rows": {"t": 3}, "tables": 1}
    admin.execute(f"SELECT id, v FROM `{wiki.database_name}`.t ORDER BY id")
    assert admin.fetchall() == ((0, b"a\x00b\n'"), (1, None), (2, b"-0.0015"))


# -- format 1 -----------------------------------------------------------------------------


@pytest.mark.mariadb
def test_a_format_1_dump_still_restores(admin, new_wiki):
    """mariadb_dump_format_1.sql was written by the driver's earlier Python dumper."""
    wiki = new_wiki()
    database = wiki.database_name

    restored = make_driver().restore(wiki, io.BytesIO(FORMAT_1_DUMP.read_bytes()))

    assert restored == {
        "table_rows": {
            "mw_categorylinks": 1,
            "mw_page": 2,
            "mw_revision": 2,
            "mw_site_stats": 1,
            "mw_text": 3,
            "mw_user": 2,
        },
        "tables": 6,
    }
    admin.execute(f"SELECT old_id, old_text FROM `{database}`.mw_text ORDER BY old_id")
    assert admin.fetchall() == (
        (1, bytes(range(256))),
        (2, b"line one\nline two;\n\nINSERT INTO x VALUES (1);"),
        (3, b""),
    )
    admin.execute(f"SELECT page_id, page_title, page_lang FROM `{database}`.mw_page")
    assert sorted(admin.fetchall()) == [(0, b"Zero", None), (1, "Spécial:Tout".encode(), b"en")]
    admin.execute(f"SELECT user_name, user_password FROM `{database}`.mw_user ORDER BY 1")
    assert admin.fetchall() == (
        (b"Admin", b"\x00\xff\xfe;\n\r\x1a'"),
        ("Zoë 😀".encode(), b""),
    )
    assert make_driver().inspect(wiki).details["last_edit"] == "2024-03-01T12:34:56+00:00"


@pytest.mark.mariadb
def test_a_restored_format_1_dump_archives_in_format_2(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    first = driver.restore(wiki, io.BytesIO(FORMAT_1_DUMP.read_bytes()))
    before = shared.snapshot(admin, wiki.database_name)
    sink = io.BytesIO()

    archived = driver.archive(wiki, sink)
    again = driver.restore(wiki, io.BytesIO(sink.getvalue()))

    assert sink.getvalue().startswith(DUMP_HEADER)
    assert first == archived == again
    assert shared.snapshot(admin, wiki.database_name) == before
