"""Schema and migration templates, and MediaWiki's timestamps."""

import pytest

from provisioning.drivers.base import PermanentError
from provisioning.drivers.schema import mediawiki_timestamp, render_schema, render_sql


def test_render_sql_substitutes_mediawikis_placeholders():
    template = (
        "ALTER TABLE /*_*/page ADD page_note BLOB;\n"
        "CREATE INDEX /*i*/page_note ON /*_*/page (page_note(10));\n"
        "CREATE TABLE /*_*/note (id INT) /*$wgDBTableOptions*/;\n"
    )

    rendered = render_sql(template, table_prefix="mw_", table_options="ENGINE=InnoDB")

    assert rendered == (
        "ALTER TABLE mw_page ADD page_note BLOB;\n"
        "CREATE INDEX mw_page_note ON mw_page (page_note(10));\n"
        "CREATE TABLE mw_note (id INT) ENGINE=InnoDB;\n"
    )


def test_render_sql_refuses_what_would_run_silently_wrong():
    with pytest.raises(PermanentError, match="migration x still has placeholders"):
        render_sql(
            "ALTER TABLE /*_/*_*/*/page;", table_prefix="", table_options="", source="migration x"
        )
    with pytest.raises(PermanentError, match="table prefix"):
        render_sql("SELECT 1;", table_prefix="mw-", table_options="")


def test_render_schema_reads_the_template_first(tmp_path):
    template = tmp_path / "migration.sql"
    template.write_text("DROP TABLE /*_*/old;\n", encoding="utf-8")

    assert render_schema(template, table_prefix="w_", table_options="") == "DROP TABLE w_old;\n"
    with pytest.raises(PermanentError, match="cannot be read"):
        render_schema(tmp_path / "missing.sql", table_prefix="", table_options="")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"20240301123456", "2024-03-01T12:34:56+00:00"),
        ("19991231235959", "1999-12-31T23:59:59+00:00"),
        (None, None),
        (b"", None),
        (b"20241301000000", None),  # month 13
        (b"2024-03-01", None),
        (b"\xff\xfe000000000000", None),
    ],
)
def test_mediawiki_timestamps_become_iso_8601_utc(value, expected):
    assert mediawiki_timestamp(value) == expected
