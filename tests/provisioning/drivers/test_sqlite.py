"""The embedded database driver against real SQLite files in tmp_path."""

from __future__ import annotations

import io
import shlex
import sqlite3
import sys
from pathlib import Path

import pytest

from provisioning.drivers.base import PermanentError, WikiResources
from provisioning.drivers.schema import render_sql
from provisioning.drivers.sqlite import SQLiteDatabaseDriver

DEMO_SCHEMA = Path(__file__).resolve().parents[3] / "provisioning" / "schema" / "demo.sql"
DEMO_TABLES = {"page", "revision", "text", "user", "site_stats"}


def wiki(wiki_id: str = "ab") -> WikiResources:
    return WikiResources(
        wiki_id=wiki_id, database_name=f"wiki_{wiki_id}", storage_prefix=f"wikis/{wiki_id}/"
    )


@pytest.fixture
def driver(tmp_path: Path) -> SQLiteDatabaseDriver:
    return SQLiteDatabaseDriver(root=tmp_path / "databases", schema_sql=DEMO_SCHEMA)


def db_file(driver: SQLiteDatabaseDriver, wiki_id: str = "ab") -> Path:
    return driver.root / f"wiki_{wiki_id}.sqlite"


def tables_in(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def all_rows(path: Path) -> dict[str, list[tuple]]:
    connection = sqlite3.connect(path)
    try:
        return {
            table: connection.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
            for table in sorted(tables_in(path))
        }
    finally:
        connection.close()


def dump(driver: SQLiteDatabaseDriver, resources: WikiResources) -> tuple[dict, bytes]:
    sink = io.BytesIO()
    result = driver.archive(resources, sink)
    return result, sink.getvalue()


# -- create ------------------------------------------------------------------------------


def test_create_loads_the_schema_and_publishes_one_file(driver):
    result = driver.create(wiki(), resume=False)

    assert result["created"] is True
    assert result["tables"] == 5
    path = db_file(driver)
    assert tables_in(path) == DEMO_TABLES
    with sqlite3.connect(path) as connection:
        titles = connection.execute("SELECT page_title FROM page").fetchall()
    assert titles == [("Main_Page",)]
    assert sorted(p.name for p in driver.root.iterdir()) == ["wiki_ab.sqlite"]


def test_create_twice_leaves_the_complete_database_alone(driver):
    driver.create(wiki(), resume=False)
    with sqlite3.connect(db_file(driver)) as connection:
        connection.execute("INSERT INTO user VALUES (7, 'Alice')")
    connection.close()

    again = driver.create(wiki(), resume=False)

    assert again["created"] is False
    assert again["tables"] == 5
    assert all_rows(db_file(driver))["user"] == [(7, "Alice")]


def test_table_prefix_is_applied(tmp_path):
    driver = SQLiteDatabaseDriver(root=tmp_path, schema_sql=DEMO_SCHEMA, table_prefix="mw_")
    driver.create(wiki(), resume=False)

    assert tables_in(db_file(driver)) == {f"mw_{name}" for name in DEMO_TABLES}
    assert driver.inspect(wiki()).counts == {"tables": 5, "pages": 1}


def test_a_leftover_partial_file_does_not_count_as_existing(driver):
    driver.root.mkdir(parents=True)
    partial = driver.root / "wiki_ab.sqlite.partial"
    partial.write_bytes(b"half a database from a worker that died")

    assert driver.inspect(wiki()).exists is False
    assert driver.create(wiki(), resume=False)["created"] is True
    assert not partial.exists()
    assert tables_in(db_file(driver)) == DEMO_TABLES


def test_an_incomplete_database_is_refused_without_resume_and_rebuilt_with_it(driver):
    driver.root.mkdir(parents=True)
    with sqlite3.connect(db_file(driver)) as connection:
        connection.execute("CREATE TABLE page (page_id INTEGER)")
    connection.close()

    with pytest.raises(PermanentError, match="without tables"):
        driver.create(wiki(), resume=False)
    assert tables_in(db_file(driver)) == {"page"}  # not ours: left as it was

    assert driver.create(wiki(), resume=True)["created"] is True
    assert tables_in(db_file(driver)) == DEMO_TABLES


def test_a_file_that_is_not_a_database_counts_as_incomplete(driver):
    driver.root.mkdir(parents=True)
    db_file(driver).write_bytes(b"not sqlite at all" * 100)

    with pytest.raises(PermanentError):
        driver.create(wiki(), resume=False)
    assert driver.create(wiki(), resume=True)["created"] is True
    assert tables_in(db_file(driver)) == DEMO_TABLES


def test_a_schema_that_fails_publishes_nothing(tmp_path):
    schema = tmp_path / "broken.sql"
    schema.write_text("CREATE TABLE /*_*/ok (id INTEGER);\nCREATE TABLE nonsense (;\n")
    driver = SQLiteDatabaseDriver(root=tmp_path / "db", schema_sql=schema)

    with pytest.raises(PermanentError, match="statement failed"):
        driver.create(wiki(), resume=False)
    assert list(driver.root.iterdir()) == []


def test_a_database_name_is_checked_again_by_the_driver(driver):
    resources = wiki()
    object.__setattr__(resources, "database_name", "../escape")  # bypass the dataclass check

    with pytest.raises(PermanentError, match="breaks the rule"):
        driver.create(resources, resume=False)
    assert not (driver.root.parent / "escape.sqlite").exists()


# -- archive and restore -----------------------------------------------------------------

AWKWARD_TEXTS = [
    "it's a 'quoted' \"word\"",
    "line one\nline two;\n\nINSERT INTO page VALUES(9);",
    "unicode: Zürich – 東京 – emoji 🎉",
    "trailing backslash \\",
    "",
]


def fill_with_awkward_data(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO text VALUES (?, ?)",
            [(index + 10, text) for index, text in enumerate(AWKWARD_TEXTS)],
        )
        connection.execute(
            "CREATE TABLE attachments (id INTEGER PRIMARY KEY, data BLOB, note TEXT, ratio REAL)"
        )
        connection.execute("CREATE INDEX attachments_by_note ON attachments (note)")
        connection.executemany(
            "INSERT INTO attachments VALUES (?, ?, ?, ?)",
            [
                (1, bytes(range(256)), None, 0.1),
                (2, None, "no data", 1 / 3),
                (3, b"", "empty blob", -2.5e-300),
            ],
        )
    connection.close()


def test_archive_purge_restore_gives_back_equal_data(driver):
    driver.create(wiki(), resume=False)
    fill_with_awkward_data(db_file(driver))
    before = all_rows(db_file(driver))

    archived, dumped = dump(driver, wiki())
    assert driver.purge(wiki()) == {"existed": True}
    assert not db_file(driver).exists()
    restored = driver.restore(wiki(), io.BytesIO(dumped))

    assert archived["table_rows"] == restored["table_rows"]
    assert archived["table_rows"]["text"] == 1 + len(AWKWARD_TEXTS)
    assert archived["table_rows"]["attachments"] == 3
    assert archived["tables"] == 6
    assert all_rows(db_file(driver)) == before
    with sqlite3.connect(db_file(driver)) as connection:
        indexes = connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        assert ("attachments_by_note",) in indexes.fetchall()
    connection.close()


def test_archive_twice_writes_the_same_dump(driver):
    driver.create(wiki(), resume=False)
    fill_with_awkward_data(db_file(driver))

    first, second = dump(driver, wiki()), dump(driver, wiki())

    assert first == second
    assert first[1].startswith(b"BEGIN TRANSACTION;\n")
    assert first[1].endswith(b"COMMIT;\n")


def test_archive_streams_statement_by_statement(driver):
    driver.create(wiki(), resume=False)

    class CountingSink(io.BytesIO):
        writes = 0

        def write(self, data):
            CountingSink.writes += 1
            return super().write(data)

    driver.archive(wiki(), CountingSink())
    assert CountingSink.writes > 5


def test_archive_reads_one_snapshot_while_a_writer_waits(driver):
    driver.create(wiki(), resume=False)
    writer = sqlite3.connect(db_file(driver), timeout=0, isolation_level=None)
    refused = []

    class WritingSink(io.BytesIO):
        def write(self, data):
            if not refused:  # mid-dump: the dump's read transaction must hold the writer off
                with pytest.raises(sqlite3.OperationalError, match="locked") as caught:
                    writer.execute("INSERT INTO user VALUES (99, 'Mallory')")
                refused.append(caught.value)
            return super().write(data)

    try:
        result = driver.archive(wiki(), WritingSink())
        writer.execute("INSERT INTO user VALUES (99, 'Mallory')")  # free again afterwards
    finally:
        writer.close()

    assert refused
    assert result["table_rows"]["user"] == 0


def test_archive_of_a_missing_database_is_refused(driver):
    with pytest.raises(PermanentError, match="does not exist"):
        driver.archive(wiki(), io.BytesIO())
    assert not db_file(driver).exists()


def test_restore_twice_gives_the_same_result(driver):
    driver.create(wiki(), resume=False)
    fill_with_awkward_data(db_file(driver))
    before = all_rows(db_file(driver))
    _, dumped = dump(driver, wiki())

    first = driver.restore(wiki(), io.BytesIO(dumped))
    second = driver.restore(wiki(), io.BytesIO(dumped))

    assert first == second
    assert all_rows(db_file(driver)) == before


def test_restore_replaces_a_partial_database(driver):
    driver.create(wiki(), resume=False)
    _, dumped = dump(driver, wiki())
    driver.purge(wiki())
    driver.root.joinpath("wiki_ab.sqlite.partial").write_bytes(b"junk")

    driver.restore(wiki(), io.BytesIO(dumped))

    assert tables_in(db_file(driver)) == DEMO_TABLES
    assert not driver.root.joinpath("wiki_ab.sqlite.partial").exists()


def test_a_truncated_dump_is_refused_and_publishes_nothing(driver):
    driver.create(wiki(), resume=False)
    _, dumped = dump(driver, wiki())
    driver.purge(wiki())
    cut = dumped[: dumped.rindex(b"COMMIT;")]

    with pytest.raises(PermanentError, match="cut short"):
        driver.restore(wiki(), io.BytesIO(cut))
    assert list(driver.root.iterdir()) == []


def test_a_dump_with_a_bad_statement_is_refused(driver):
    bad = b"BEGIN TRANSACTION;\nCREATE TABLE t (x);\nINSERT INTO missing VALUES(1);\nCOMMIT;\n"

    with pytest.raises(PermanentError, match="no such table"):
        driver.restore(wiki(), io.BytesIO(bad))
    assert not db_file(driver).exists()


# -- purge and inspect -------------------------------------------------------------------


def test_purge_removes_the_file_and_its_siblings_and_is_idempotent(driver):
    driver.create(wiki(), resume=False)
    for suffix in ("-wal", "-shm", "-journal", ".partial"):
        driver.root.joinpath(f"wiki_ab.sqlite{suffix}").write_bytes(b"x")

    assert driver.purge(wiki()) == {"existed": True}
    assert list(driver.root.iterdir()) == []
    assert driver.purge(wiki()) == {"existed": False}


def test_purge_of_ab_leaves_abc_untouched(driver):
    driver.create(wiki("ab"), resume=False)
    driver.create(wiki("abc"), resume=False)

    driver.purge(wiki("ab"))

    assert not db_file(driver, "ab").exists()
    assert tables_in(db_file(driver, "abc")) == DEMO_TABLES
    assert driver.inspect(wiki("abc")).exists is True


def test_inspect_reports_size_and_counts(driver):
    assert driver.inspect(wiki()).exists is False
    driver.create(wiki(), resume=False)

    seen = driver.inspect(wiki())

    assert seen.exists is True
    assert seen.bytes == db_file(driver).stat().st_size > 0
    assert seen.counts == {"tables": 5, "pages": 1}
    assert seen.details["table_rows"] == {
        "page": 1,
        "revision": 1,
        "site_stats": 1,
        "text": 1,
        "user": 0,
    }
    assert seen.details["last_edit"] == "2026-01-01T00:00:00+00:00"  # the demo's revision
    assert driver.inspect(wiki()) == seen


def test_inspect_tells_the_newest_edit_or_none(driver):
    driver.create(wiki(), resume=False)
    with sqlite3.connect(db_file(driver)) as connection:
        connection.executemany(
            "INSERT INTO revision VALUES (?, 1, ?, '')",
            [(2, "20260301123456"), (3, "20251231235959")],
        )
    connection.close()
    assert driver.inspect(wiki()).details["last_edit"] == "2026-03-01T12:34:56+00:00"

    with sqlite3.connect(db_file(driver)) as connection:
        connection.execute("DELETE FROM revision")
    connection.close()
    assert driver.inspect(wiki()).details["last_edit"] is None


# -- migrations --------------------------------------------------------------------------


def test_apply_sql_runs_a_migration_in_one_transaction(tmp_path):
    driver = SQLiteDatabaseDriver(root=tmp_path, schema_sql=DEMO_SCHEMA, table_prefix="mw_")
    driver.create(wiki(), resume=False)
    sql = render_sql(
        "ALTER TABLE /*_*/page ADD COLUMN page_note TEXT DEFAULT NULL;\n"
        "-- a comment; with a semicolon\n"
        "UPDATE /*_*/page SET page_note = 'a;b' WHERE page_id = 1;\n",
        table_prefix=driver.table_prefix,
        table_options=driver.table_options,
    )

    assert driver.apply_sql(wiki(), sql) == {"statements": 2}

    assert all_rows(db_file(driver))["mw_page"] == [(1, 0, "Main_Page", 1, "20260101000000", "a;b")]


def test_a_failing_migration_names_its_statement_and_keeps_nothing(driver):
    driver.create(wiki(), resume=False)
    before = all_rows(db_file(driver))
    sql = "ALTER TABLE page ADD COLUMN page_note TEXT;\nALTER TABLE nope ADD COLUMN x INT;\n"

    with pytest.raises(PermanentError, match=r"statement 2 \(ALTER TABLE nope.*no such table"):
        driver.apply_sql(wiki(), sql)

    assert all_rows(db_file(driver)) == before
    with sqlite3.connect(db_file(driver)) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(page)")]
    connection.close()
    assert "page_note" not in columns


def test_apply_sql_on_a_missing_database_is_refused(driver):
    with pytest.raises(PermanentError, match="does not exist"):
        driver.apply_sql(wiki(), "SELECT 1;")
    assert not db_file(driver).exists()


# -- post-create hook --------------------------------------------------------------------

RECORD_ARGS = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(repr(sys.argv[2:]))"


def test_post_create_without_a_hook_is_skipped(driver):
    assert driver.post_create(wiki()) == {"hook": "skipped"}


def test_post_create_substitutes_placeholders_into_single_arguments(tmp_path):
    record = tmp_path / "args.txt"
    hook = shlex.join([sys.executable, "-c", RECORD_ARGS, str(record)])
    hook += " --wiki={wiki} {dbname} {path}"
    root = tmp_path / "data dir"  # a space in the path must not split the argument
    driver = SQLiteDatabaseDriver(root=root, schema_sql=DEMO_SCHEMA, post_create_hook=hook)

    result = driver.post_create(wiki())
    assert driver.post_create(wiki()) | {"seconds": 0} == result | {"seconds": 0}

    assert result["hook"] == "ran"
    expected = ["--wiki=ab", "wiki_ab", str(root.resolve() / "wiki_ab.sqlite")]
    assert record.read_text() == repr(expected)


def test_a_failing_hook_is_a_permanent_error_with_its_stderr(tmp_path):
    script = "import sys; sys.stderr.write('install.php: no database\\n'); sys.exit(3)"
    hook = shlex.join([sys.executable, "-c", script])
    driver = SQLiteDatabaseDriver(root=tmp_path, schema_sql=DEMO_SCHEMA, post_create_hook=hook)

    with pytest.raises(PermanentError, match=r"exited with 3.*install\.php: no database"):
        driver.post_create(wiki())


def test_a_missing_or_slow_hook_is_a_permanent_error(tmp_path):
    missing = SQLiteDatabaseDriver(
        root=tmp_path, schema_sql=DEMO_SCHEMA, post_create_hook="/nonexistent/hook {wiki}"
    )
    with pytest.raises(PermanentError, match="not found"):
        missing.post_create(wiki())

    slow_hook = shlex.join([sys.executable, "-c", "import time; time.sleep(30)"])
    slow = SQLiteDatabaseDriver(root=tmp_path, schema_sql=DEMO_SCHEMA, post_create_hook=slow_hook)
    slow.post_create_timeout_seconds = 0.5
    with pytest.raises(PermanentError, match="ran over"):
        slow.post_create(wiki())


def test_a_full_text_table_survives_archive_and_restore(tmp_path):
    """MediaWiki's installer turns searchindex into an FTS table: its rows live in shadow
    tables, and the dump must restore without inserting into the virtual table itself."""
    import sqlite3 as sqlite

    if "ENABLE_FTS3" not in " ".join(
        row[0] for row in sqlite.connect(":memory:").execute("PRAGMA compile_options")
    ):
        pytest.skip("this Python's SQLite has no FTS3")
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE /*_*/page (page_id INTEGER PRIMARY KEY, title TEXT);\n")
    driver = SQLiteDatabaseDriver(root=tmp_path / "db", schema_sql=schema)
    wiki = WikiResources(wiki_id="ab", database_name="wiki_ab", storage_prefix="wikis/ab/")
    driver.create(wiki, resume=False)
    with sqlite.connect(driver.database_path(wiki)) as connection:
        connection.execute("CREATE VIRTUAL TABLE searchindex USING FTS3(si_title, si_text)")
        connection.execute("INSERT INTO searchindex VALUES ('Main Page', 'hello farm')")
        connection.execute("INSERT INTO page VALUES (1, 'Main Page')")
    dump = io.BytesIO()
    archived = driver.archive(wiki, dump)
    driver.purge(wiki)
    restored = driver.restore(wiki, io.BytesIO(dump.getvalue()))
    assert restored["table_rows"] == archived["table_rows"]
    assert restored["table_rows"]["searchindex"] == 1
    with sqlite.connect(driver.database_path(wiki)) as connection:
        found = connection.execute(
            "SELECT si_title FROM searchindex WHERE searchindex MATCH 'farm'"
        ).fetchall()
    assert found == [("Main Page",)]
