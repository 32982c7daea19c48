"""The MariaDB database driver against the real server at 127.0.0.1:3306.

Every database a test makes is named `wiki_t<random>`, checked absent first, and dropped by
the fixture that named it; no test drops anything else.
"""

import gzip
import io
import os
import secrets
import shlex
import sys
from pathlib import Path

import MySQLdb
import pytest

from provisioning.drivers.base import PermanentError, TransientError, WikiResources
from provisioning.drivers.mariadb import DUMP_HEADER, FORMAT_1_HEADER, MariaDBDatabaseDriver
from provisioning.drivers.schema import render_sql
from tests.services import port_open, service_unavailable

MARIADB_URL = os.environ.get("FARM_TEST_DB_URL", "mysql://root:@127.0.0.1:3306/")
CLOSED_PORT_URL = "mysql://root:@127.0.0.1:1/"
FIXTURE_SCHEMA = Path(__file__).with_name("mediawiki_style_schema.sql")
MEDIAWIKI_SCHEMA = Path("/usr/share/mediawiki/maintenance/tables-generated.sql")
PREFIX = "mw_"
FIXTURE_TABLES = {
    f"{PREFIX}{name}"
    for name in ("site_stats", "user", "page", "revision", "text", "categorylinks")
}


def make_driver(url: str = MARIADB_URL, **options) -> MariaDBDatabaseDriver:
    options.setdefault("schema_sql", FIXTURE_SCHEMA)
    options.setdefault("table_prefix", PREFIX)
    options.setdefault("clusters", {})
    options.setdefault("post_create_hook", "")
    return MariaDBDatabaseDriver(url=url, **options)


def wiki_named(database_name: str, cluster: str = "default") -> WikiResources:
    wiki_id = "t" + secrets.token_hex(5)
    return WikiResources(
        wiki_id=wiki_id,
        database_name=database_name,
        storage_prefix=f"wikis/{wiki_id}/",
        cluster=cluster,
    )


def unchecked_wiki(database_name: str) -> WikiResources:
    """A WikiResources that skipped its own validation, as a careless caller might build."""
    wiki = object.__new__(WikiResources)
    for name, value in {
        "wiki_id": "tbad",
        "database_name": database_name,
        "storage_prefix": "wikis/tbad/",
        "cluster": "default",
        "metadata": {},
    }.items():
        object.__setattr__(wiki, name, value)
    return wiki


@pytest.fixture(scope="module")
def admin():
    """A plain connection for setting up and checking, apart from the driver's own."""
    if not port_open("127.0.0.1", 3306):
        service_unavailable("MariaDB is not listening on 127.0.0.1:3306")
    connection = MySQLdb.connect(
        host="127.0.0.1",
        port=3306,
        user="root",
        password="",
        charset="utf8mb4",
        autocommit=True,
        binary_prefix=True,  # bytes go over as _binary'..', not as utf8mb4 text
    )
    yield connection.cursor()
    connection.close()


def database_exists(admin, name: str) -> bool:
    admin.execute(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)
    )
    return bool(admin.fetchone()[0])


@pytest.fixture
def new_wiki(admin):
    """Make wikis with fresh database names; drop exactly those databases afterwards."""
    names = []

    def make(cluster: str = "default") -> WikiResources:
        name = f"wiki_t{secrets.token_hex(6)}"
        assert not database_exists(admin, name)
        names.append(name)
        return wiki_named(name, cluster)

    yield make
    for name in names:
        admin.execute(f"DROP DATABASE IF EXISTS `{name}`")


def table_names(admin, database: str) -> set[str]:
    admin.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,)
    )
    return {name for (name,) in admin.fetchall()}


def fill_wiki(admin, database: str) -> None:
    """Rows with binary bytes, NULLs, quotes, line breaks, a zero id and a large blob."""
    admin.execute(f"USE `{database}`")
    admin.executemany(
        f"INSERT INTO {PREFIX}user (user_id, user_name, user_real_name, user_password,"
        " user_email, user_touched, user_token, user_registration, user_editcount)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                1,
                b"Admin",
                b'O\'Brien \\ "q"; --',
                b"\x00\xff\xfe;\n\r\x1a'",
                b"a@example.org",
                b"20240101000000",
                secrets.token_bytes(32),
                None,
                5,
            ),
            (
                2,
                "Zoë 😀".encode(),
                b"",
                b"",
                b"",
                b"20240102000000",
                b"\x00" * 32,
                b"20240102000000",
                None,
            ),
            (
                3,
                b"\xff\xfeinvalid utf-8",
                b"X'41'",
                b"_utf8mb4",
                b"",
                b"20240103000000",
                b"t" * 32,
                None,
                0,
            ),
        ],
    )
    # A page with id 0 survives only if the restore keeps NO_AUTO_VALUE_ON_ZERO.
    admin.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
    admin.executemany(
        f"INSERT INTO {PREFIX}page (page_id, page_namespace, page_title, page_random,"
        " page_touched, page_latest, page_len, page_lang) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
        [
            (0, 0, b"Zero", 0.5, b"20240101000000", 0, 0, None),
            (1, 0, b"Main_Page", 0.123456789012345, b"20240101000000", 1, 42, b"en"),
            (2, -1, "Spécial:Tout".encode(), 1e-300, b"20240101000000", 2, 0, None),
        ],
    )
    admin.execute("SET SESSION sql_mode = DEFAULT")
    admin.executemany(
        f"INSERT INTO {PREFIX}text (old_text, old_flags) VALUES (%s, %s)",
        [(secrets.token_bytes(n % 200 + 1), b"utf-8") for n in range(1203)]
        + [(secrets.token_bytes(3 * 1024 * 1024), b"gzip"), (b"", b"")],
    )
    admin.execute(
        f"INSERT INTO {PREFIX}categorylinks (cl_from, cl_to, cl_timestamp, cl_type)"
        " VALUES (1, %s, '2024-02-29 12:34:56', 'subcat')",
        (b"Cat\x00\n'",),
    )
    admin.execute(f"INSERT INTO {PREFIX}site_stats (ss_row_id, ss_total_edits) VALUES (1, 7)")


def snapshot(admin, database: str) -> dict[str, object]:
    """Every table's definition and rows, to compare a restored database with the original."""
    content = {}
    for table in sorted(table_names(admin, database)):
        admin.execute(f"SHOW CREATE TABLE `{database}`.`{table}`")
        definition = admin.fetchone()[1]
        admin.execute(f"SELECT * FROM `{database}`.`{table}`")
        content[table] = (definition, sorted(admin.fetchall(), key=repr))
    return content


# -- create ----------------------------------------------------------------------------


@pytest.mark.mariadb
def test_create_loads_the_schema_with_binary_tables(admin, new_wiki):
    wiki = new_wiki()

    result = make_driver().create(wiki, resume=False)

    assert result == {"created": True, "tables": 6}
    database = wiki.database_name
    assert table_names(admin, database) == FIXTURE_TABLES
    admin.execute(
        "SELECT DISTINCT ENGINE, TABLE_COLLATION FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s",
        (database,),
    )
    assert admin.fetchall() == (("InnoDB", "binary"),)
    admin.execute(
        "SELECT DISTINCT CHARACTER_SET_NAME FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND CHARACTER_SET_NAME IS NOT NULL",
        (database,),
    )
    assert admin.fetchall() == (("binary",),)
    admin.execute(
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s",
        (database,),
    )
    indexes = {name for (name,) in admin.fetchall()}
    assert {"page_len", "page_random", "page_redirect_namespace_len", "mw_user_email"} <= indexes


@pytest.mark.mariadb
def test_create_twice_keeps_the_database(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    admin.execute(f"INSERT INTO `{wiki.database_name}`.mw_site_stats (ss_row_id) VALUES (1)")

    assert driver.create(wiki, resume=False) == {"created": False, "tables": 6}
    assert driver.create(wiki, resume=True) == {"created": False, "tables": 6}
    admin.execute(f"SELECT COUNT(*) FROM `{wiki.database_name}`.mw_site_stats")
    assert admin.fetchone()[0] == 1


@pytest.mark.mariadb
def test_create_refuses_an_incomplete_database_it_did_not_start(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    admin.execute(f"CREATE DATABASE `{wiki.database_name}`")
    admin.execute(f"CREATE TABLE `{wiki.database_name}`.mw_page (page_id INT PRIMARY KEY)")

    with pytest.raises(PermanentError, match="already exists and was not created by this"):
        driver.create(wiki, resume=False)
    assert table_names(admin, wiki.database_name) == {"mw_page"}

    assert driver.create(wiki, resume=True) == {"created": True, "tables": 6}
    assert table_names(admin, wiki.database_name) == FIXTURE_TABLES


@pytest.mark.mariadb
def test_create_refuses_a_template_it_cannot_render(admin, new_wiki, tmp_path):
    template = tmp_path / "schema.sql"
    # With an empty prefix, substitution turns /*_/*_*/*/ into /*_*/: a placeholder that
    # survives and would silently be a comment.
    template.write_text("CREATE TABLE /*_/*_*/*/page (page_id INT) /*$wgDBTableOptions*/;\n")
    wiki = new_wiki()

    with pytest.raises(PermanentError, match="still has placeholders"):
        make_driver(schema_sql=template, table_prefix="").create(wiki, resume=False)
    with pytest.raises(PermanentError, match="cannot be read"):
        make_driver(schema_sql=tmp_path / "missing.sql").create(wiki, resume=False)
    with pytest.raises(PermanentError, match="table prefix"):
        make_driver(table_prefix="mw-").create(wiki, resume=False)
    assert not database_exists(admin, wiki.database_name)


@pytest.mark.mariadb
def test_create_names_the_failing_schema_statement(new_wiki, tmp_path):
    template = tmp_path / "schema.sql"
    template.write_text("CREATE TABLE /*_*/page (page_id INT);\nCREATE TABLE oops (;\n")
    wiki = new_wiki()

    with pytest.raises(PermanentError, match=rf"{wiki.database_name}.*statement 2 \(CREATE"):
        make_driver(schema_sql=template).create(wiki, resume=False)


@pytest.mark.mariadb
def test_create_loads_mediawikis_own_schema(admin, new_wiki):
    if not MEDIAWIKI_SCHEMA.exists():
        service_unavailable("Debian's mediawiki is not installed (.ci/install-mediawiki.sh)")
    wiki = new_wiki()

    result = make_driver(schema_sql=MEDIAWIKI_SCHEMA, table_prefix="").create(wiki, resume=False)

    assert result == {"created": True, "tables": 58}
    assert len(table_names(admin, wiki.database_name)) == 58


# -- archive, purge, restore -----------------------------------------------------------


@pytest.mark.mariadb
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_archive_purge_restore_gives_back_the_same_database(admin, new_wiki, compressed):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    fill_wiki(admin, wiki.database_name)
    before = snapshot(admin, wiki.database_name)
    expected_rows = {table: len(rows) for table, (_, rows) in before.items()}

    buffer = io.BytesIO()
    if compressed:
        with gzip.GzipFile(fileobj=buffer, mode="wb") as sink:
            archived = driver.archive(wiki, sink)
    else:
        archived = driver.archive(wiki, buffer)
    assert archived == {"table_rows": expected_rows, "tables": 6}
    assert expected_rows[f"{PREFIX}text"] == 1205
    assert driver.purge(wiki) == {"existed": True}
    assert not database_exists(admin, wiki.database_name)

    buffer.seek(0)
    source = gzip.GzipFile(fileobj=buffer, mode="rb") if compressed else buffer
    restored = driver.restore(wiki, source)

    assert restored == {"table_rows": expected_rows, "tables": 6}
    assert snapshot(admin, wiki.database_name) == before


@pytest.mark.mariadb
def test_round_trip_keeps_types_beyond_mediawikis(admin, new_wiki):
    """Character sets other than binary, temporal and numeric types, generated columns."""
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    admin.execute(
        f"CREATE TABLE `{wiki.database_name}`.extra ("
        " id INT AUTO_INCREMENT PRIMARY KEY COMMENT 'line\nbreak; and ''quote''',"
        " latin VARCHAR(20) CHARACTER SET latin1, uni TEXT CHARACTER SET utf8mb4,"
        " made DATETIME(6), span TIME, day DATE, yr YEAR, f FLOAT, d DOUBLE,"
        " money DECIMAL(12,3), flags BIT(5), kind SET('a','b') CHARACTER SET utf8mb4,"
        " doubled INT AS (id * 2) VIRTUAL"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='two\nlines'"
    )
    admin.execute(
        f"INSERT INTO `{wiki.database_name}`.extra (latin, uni, made, span, day, yr, f, d,"
        " money, flags, kind) VALUES"
        " ('café', %s, '2024-02-29 23:59:59.123456', '-838:59:59', '0001-01-01', 2155,"
        " 0.1, -1.7976931348623157e308, -123456789.125, b'10101', 'a,b'),"
        " (NULL, '', NULL, '00:00:00', NULL, NULL, NULL, 5e-324, 0, b'0', '')",
        ("Zoë 😀 \\ ' \" \n;",),
    )
    before = snapshot(admin, wiki.database_name)
    dump = io.BytesIO()
    driver.archive(wiki, dump)
    driver.purge(wiki)

    dump.seek(0)
    driver.restore(wiki, dump)

    assert snapshot(admin, wiki.database_name) == before
    assert "café".encode() not in dump.getvalue()  # character data travels as hex literals


@pytest.mark.mariadb
def test_dump_is_the_tools_output_between_our_two_lines(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    fill_wiki(admin, wiki.database_name)
    sink = io.BytesIO()

    archived = driver.archive(wiki, sink)

    dump = sink.getvalue()
    lines = dump.split(b"\n")
    assert lines[0] + b"\n" == DUMP_HEADER
    assert lines[-2:] == [b"-- end of dump: 6 tables", b""]
    assert b"SET NAMES binary" in dump
    # One row per INSERT line: that is how the rows of the snapshot are counted.
    text_inserts = [line for line in lines if line.startswith(b"INSERT INTO `mw_text` VALUES (")]
    assert len(text_inserts) == archived["table_rows"]["mw_text"] == 1205
    assert sum(line.startswith(b"CREATE TABLE `") for line in lines) == 6
    # Nothing in it names the database, so it restores into any wiki's database.
    assert wiki.database_name.encode() not in dump
    assert not any(line.startswith((b"USE ", b"CREATE DATABASE")) for line in lines)


@pytest.mark.mariadb
def test_archive_refuses_a_database_with_views(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    admin.execute(f"CREATE VIEW `{wiki.database_name}`.pages AS SELECT 1 AS one")

    with pytest.raises(PermanentError, match="1 views"):
        driver.archive(wiki, io.BytesIO())


@pytest.mark.mariadb
def test_archive_of_a_missing_database_fails(new_wiki):
    with pytest.raises(PermanentError, match="does not exist"):
        make_driver().archive(new_wiki(), io.BytesIO())


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("dump", "message"),
    [
        (b"-- something else\n", "not a dump of a known format"),
        (FORMAT_1_HEADER + b"CREATE TABLE `t` (id INT);\n", "truncated"),
        (FORMAT_1_HEADER + b"CREATE TABLE `t` (id INT)\n-- end of dump: 1 tables\n", "line 2"),
        (FORMAT_1_HEADER + b"DROP DATABASE mysql;\n-- end of dump: 0 tables\n", "line 2"),
        (FORMAT_1_HEADER + b"CREATE TABLE `mysql`.`t` (id INT);\n", "line 2"),
        (FORMAT_1_HEADER + b"-- end of dump: 0 tables\nINSERT INTO `t` VALUES (1);\n", "after"),
        # One statement per execute: what follows a `;` is never run.
        (
            FORMAT_1_HEADER
            + b"CREATE TABLE `t` (id INT); DROP DATABASE mysql;\n-- end of dump: 1 tables\n",
            "1064",
        ),
    ],
    ids=["header", "truncated", "no-semicolon", "drop", "qualified", "after-end", "smuggled"],
)
def test_restore_refuses_anything_but_a_complete_format_1_dump(admin, new_wiki, dump, message):
    wiki = new_wiki()

    with pytest.raises(PermanentError, match=message):
        make_driver().restore(wiki, io.BytesIO(dump))
    assert database_exists(admin, "mysql")


@pytest.mark.mariadb
def test_a_file_of_another_kind_replaces_nothing(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)

    with pytest.raises(PermanentError, match="not a dump of a known format"):
        driver.restore(wiki, io.BytesIO(b"PK\x03\x04 a zip file\n"))
    assert table_names(admin, wiki.database_name) == FIXTURE_TABLES


@pytest.mark.mariadb
def test_restore_replaces_a_partial_database(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    fill_wiki(admin, wiki.database_name)
    dump = io.BytesIO()
    driver.archive(wiki, dump)
    admin.execute(f"DROP TABLE `{wiki.database_name}`.mw_text")
    admin.execute(f"CREATE TABLE `{wiki.database_name}`.leftover (id INT)")

    dump.seek(0)
    restored = driver.restore(wiki, dump)

    assert set(restored["table_rows"]) == FIXTURE_TABLES
    assert restored["table_rows"]["mw_text"] == 1205


@pytest.mark.mariadb
def test_purge_twice_and_inspect(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    fill_wiki(admin, wiki.database_name)
    # Sizes and row estimates in information_schema are statistics, refreshed in the
    # background; ANALYZE refreshes them now.
    admin.execute(f"ANALYZE TABLE `{wiki.database_name}`.mw_text")

    inspection = driver.inspect(wiki)
    assert inspection.exists
    assert inspection.bytes > 3 * 1024 * 1024
    assert inspection.counts == {"tables": 6, "pages": 3}  # pages: an exact count
    estimates = inspection.details["table_rows_estimate"]
    assert set(estimates) == FIXTURE_TABLES
    assert 600 < estimates["mw_text"] < 2400
    assert inspection.details["last_edit"] is None  # no revisions yet

    assert driver.purge(wiki) == {"existed": True}
    assert driver.purge(wiki) == {"existed": False}
    assert driver.inspect(wiki).as_dict() == {"exists": False, "bytes": 0, "counts": {}}


@pytest.mark.mariadb
def test_inspect_tells_the_newest_edit(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    admin.executemany(
        f"INSERT INTO `{wiki.database_name}`.mw_revision (rev_page, rev_timestamp, rev_sha1)"
        " VALUES (1, %s, '')",
        [(b"20240101000000",), (b"20240301123456",), (b"20231231235959",)],
    )

    assert driver.inspect(wiki).details["last_edit"] == "2024-03-01T12:34:56+00:00"


@pytest.mark.mariadb
def test_inspect_of_a_database_without_mediawikis_tables(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    admin.execute(f"CREATE DATABASE `{wiki.database_name}`")
    admin.execute(f"CREATE TABLE `{wiki.database_name}`.mw_revision (id INT)")

    inspection = driver.inspect(wiki)

    assert inspection.counts == {"tables": 1}
    assert inspection.details["last_edit"] is None  # a revision table, but not MediaWiki's


# -- migrations ------------------------------------------------------------------------


@pytest.mark.mariadb
def test_apply_sql_runs_a_migration_in_the_wikis_database(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    sql = driver_rendered(
        "-- adds a column; the prefix comes from the driver\n"
        "ALTER TABLE /*_*/page ADD COLUMN page_note VARBINARY(64) DEFAULT NULL;\n"
        "CREATE INDEX page_note ON /*_*/page (page_note);\n"
        "UPDATE /*_*/site_stats SET ss_total_edits = 0 WHERE ss_row_id = 'a;b';\n",
        driver,
    )

    assert driver.apply_sql(wiki, sql) == {"statements": 3}

    admin.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'mw_page' AND COLUMN_NAME = 'page_note'",
        (wiki.database_name,),
    )
    assert admin.fetchall() == (("page_note",),)


@pytest.mark.mariadb
def test_apply_sql_names_the_statement_that_failed(admin, new_wiki):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    sql = "ALTER TABLE mw_page ADD COLUMN page_a INT;\nALTER TABLE mw_nope ADD COLUMN b INT;\n"

    with pytest.raises(PermanentError, match=r"statement 2 \(ALTER TABLE mw_nope.*1146"):
        driver.apply_sql(wiki, sql)


@pytest.mark.mariadb
@pytest.mark.parametrize(
    "statement",
    ["USE mysql", "  create database wiki_other", "DROP SCHEMA mysql", "ALTER DATABASE x"],
)
def test_apply_sql_stays_in_the_wikis_database(admin, new_wiki, statement):
    driver, wiki = make_driver(), new_wiki()
    driver.create(wiki, resume=False)
    sql = f"ALTER TABLE mw_page ADD COLUMN page_a INT;\n{statement};\n"

    with pytest.raises(PermanentError, match="statement 2 .*would leave the wiki's database"):
        driver.apply_sql(wiki, sql)
    admin.execute(
        "SELECT COUNT(*) FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND COLUMN_NAME = 'page_a'",
        (wiki.database_name,),
    )
    assert admin.fetchone()[0] == 0  # refused before anything ran


@pytest.mark.mariadb
def test_apply_sql_on_a_missing_database_fails(new_wiki):
    with pytest.raises(PermanentError, match="does not exist"):
        make_driver().apply_sql(new_wiki(), "SELECT 1;")


def driver_rendered(template: str, driver: MariaDBDatabaseDriver) -> str:
    return render_sql(
        template, table_prefix=driver.table_prefix, table_options=driver.table_options
    )


# -- names, clusters, errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["wiki_x; DROP DATABASE mysql", "wiki`x", "wiki_x`; DROP DATABASE `mysql", "wikié", "", "W1"],
)
def test_bad_database_names_are_refused_before_any_sql(name):
    with pytest.raises(PermanentError):
        wiki_named(name)
    # The driver checks again; its server is unreachable, so a connection attempt would
    # surface as a TransientError instead of the refusal.
    driver, wiki = make_driver(url=CLOSED_PORT_URL), unchecked_wiki(name)
    for operation in (
        lambda: driver.create(wiki, resume=True),
        lambda: driver.archive(wiki, io.BytesIO()),
        lambda: driver.restore(wiki, io.BytesIO(DUMP_HEADER)),
        lambda: driver.purge(wiki),
        lambda: driver.inspect(wiki),
        lambda: driver.post_create(wiki),
        lambda: driver.apply_sql(wiki, "SELECT 1"),
    ):
        with pytest.raises(PermanentError, match="breaks the rule"):
            operation()


@pytest.mark.mariadb
def test_a_reserved_word_database_name_is_quoted(admin):
    name = "select"
    if database_exists(admin, name):
        pytest.skip("a database named `select` exists already; not ours to touch")
    driver, wiki = make_driver(), wiki_named(name)
    try:
        assert driver.create(wiki, resume=False)["created"] is True
        assert driver.inspect(wiki).counts["tables"] == 6
        dump = io.BytesIO()
        driver.archive(wiki, dump)
        dump.seek(0)
        assert driver.restore(wiki, dump)["tables"] == 6
        assert driver.purge(wiki) == {"existed": True}
    finally:
        admin.execute("DROP DATABASE IF EXISTS `select`")


def test_choose_cluster_picks_the_least_loaded():
    clusters = {"s3": MARIADB_URL, "s1": MARIADB_URL, "s2": MARIADB_URL}
    driver = make_driver(clusters=clusters)

    assert driver.choose_cluster({"s1": 5, "s2": 2, "s3": 2, "retired": 0}) == "s2"
    assert driver.choose_cluster({"s1": 1, "s2": 1}) == "s3"
    assert driver.choose_cluster({}) == "s1"
    assert make_driver().choose_cluster({"default": 9}) == "default"


@pytest.mark.mariadb
def test_connections_go_to_the_wikis_cluster(admin, new_wiki):
    driver = make_driver(clusters={"s1": CLOSED_PORT_URL, "s2": MARIADB_URL})

    assert driver.create(new_wiki(cluster="s2"), resume=False)["created"] is True
    with pytest.raises(TransientError, match="MariaDB error 200[23]"):
        driver.create(new_wiki(cluster="s1"), resume=False)
    with pytest.raises(PermanentError, match="cluster 'default' is not configured"):
        driver.purge(new_wiki())


def test_an_unreachable_server_is_a_transient_error():
    wiki = wiki_named("wiki_unreachable")

    with pytest.raises(TransientError, match="database wiki_unreachable: MariaDB error 200[23]"):
        make_driver(url=CLOSED_PORT_URL).purge(wiki)


def test_a_url_of_another_kind_is_refused():
    with pytest.raises(PermanentError, match="database URL"):
        make_driver(url="postgres://root@127.0.0.1/")


@pytest.mark.mariadb
def test_a_lock_wait_timeout_is_a_transient_error(admin, new_wiki):
    driver, wiki = make_driver(lock_wait_timeout=1), new_wiki()
    driver.create(wiki, resume=False)
    other = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        # An open transaction that read a table holds its metadata lock: DROP must wait.
        other.cursor().execute("START TRANSACTION")
        other.cursor().execute(f"SELECT * FROM `{wiki.database_name}`.mw_page")
        with pytest.raises(TransientError, match="1205"):
            driver.purge(wiki)
    finally:
        other.close()
    assert driver.purge(wiki) == {"existed": True}


# -- post-create hook ------------------------------------------------------------------


def python_command(code: str, *arguments: str) -> str:
    return shlex.join([sys.executable, "-c", code, *arguments])


def test_post_create_hook_runs_with_the_wikis_names(tmp_path):
    out = tmp_path / "hook.txt"
    hook = python_command(
        "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(' '.join(sys.argv[2:]))",
        str(out),
        "--wiki={wiki}",
        "{dbname}",
    )
    wiki = wiki_named("wiki_thook")

    result = make_driver(post_create_hook=hook).post_create(wiki)

    assert result["hook"] == "ran"
    assert result["seconds"] >= 0
    assert out.read_text() == f"--wiki={wiki.wiki_id} wiki_thook"


def test_post_create_without_a_hook_is_skipped():
    assert make_driver().post_create(wiki_named("wiki_thook")) == {"hook": "skipped"}


def test_a_failing_post_create_hook_is_a_permanent_error():
    hook = python_command("import sys; sys.stderr.write('install.php: boom'); sys.exit(3)")

    with pytest.raises(PermanentError, match="exited with 3: install.php: boom"):
        make_driver(post_create_hook=hook).post_create(wiki_named("wiki_thook"))
    with pytest.raises(PermanentError, match="cannot run"):
        make_driver(post_create_hook="/nonexistent/hook {wiki}").post_create(
            wiki_named("wiki_thook")
        )


def test_an_unparsable_post_create_hook_is_a_permanent_error():
    with pytest.raises(PermanentError, match="post-create hook cannot be parsed"):
        make_driver(post_create_hook="install.php --name '{wiki}").post_create(
            wiki_named("wiki_thook")
        )
