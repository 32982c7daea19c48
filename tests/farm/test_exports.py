"""Exports for MediaWiki: shape, SiteConfiguration layers, dblists, ETag and 304, atomic
files, and a query count that does not grow with the number of wikis."""

import json
import os

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from farm import config, exports, publishing
from farm.models import Family, Wiki, WikiState
from farm.services import tag_create
from provisioning import services
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def farm(farm_drivers, settings, ops_user, admin_user_a):
    """`one` (tags private, beta) and `two` active, `three` archived, `four` purged."""
    settings.FARM_WIKI_URL = "https://wikis.example.org/{id}/"
    tag_create(actor=ops_user, name="private", priority=10)
    tag_create(actor=ops_user, name="beta", priority=1)
    for wiki_id, tags in (("one", ["beta", "private"]), ("two", []), ("three", []), ("four", [])):
        services.wiki_create(
            actor=admin_user_a,
            wiki_id=wiki_id,
            family="default",
            sitename=wiki_id.title(),
            tags=tags,
        )
    run_pending()
    for wiki_id in ("three", "four"):
        services.wiki_archive(actor=admin_user_a, wiki_id=wiki_id)
    run_pending()
    services.wiki_purge(actor=ops_user, wiki_id="four")
    run_pending()
    assert Wiki.objects.get(pk="four").state == WikiState.PURGED
    config.config_set(actor=ops_user, layer="default", setting="wgRightsText", value="CC0")
    config.config_set(
        actor=ops_user,
        layer="tag",
        target="private",
        setting="wgGroupPermissions",
        value={"*": {"read": False}},
    )
    config.config_set(
        actor=ops_user, layer="wiki", target="two", setting="wgRightsText", value="Two's"
    )
    publishing.publish(respect_window=False)
    return ops_user


def test_farm_json_shape(farm, settings):
    export = exports.farm_export()
    assert sorted(export["wikis"]) == ["one", "three", "two"]
    assert export["tombstones"] == ["four"]
    assert "wgGroupPermissions" in export["merge_settings"]
    one = export["wikis"]["one"]
    assert one["family"] == "default"
    assert one["tags"] == ["private", "beta"]
    assert one["state"] == "active" and one["read_only"] is False
    assert one["url"] == "https://wikis.example.org/one/"
    assert one["database"] == {
        "type": "sqlite",
        "name": "wiki_one",
        "cluster": "default",
        "dir": str((settings.DATA_DIR / "databases").resolve()),
    }
    assert one["settings"]["wgSitename"] == "One"
    assert one["settings"]["wgRightsText"] == "CC0"
    assert one["settings"]["wgGroupPermissions"] == {"*": {"read": False}}
    assert export["wikis"]["two"]["settings"]["wgRightsText"] == "Two's"
    assert "wgGroupPermissions" not in export["wikis"]["two"]["settings"]
    three = export["wikis"]["three"]
    assert three["state"] == "archived" and three["read_only"] is True


def test_siteconfig_export_holds_the_layers(farm):
    site = exports.siteconfig_export()
    assert site["settings"]["wgRightsText"] == {"default": "CC0", "two": "Two's"}
    assert site["settings"]["wgGroupPermissions"] == {"+tag-private": {"*": {"read": False}}}
    assert site["settings"]["wgSitename"] == {"one": "One", "two": "Two", "three": "Three"}
    assert site["settings"]["wgDefaultSkin"] == {"default": "vector"}
    assert site["wikis"]["one"] == {"suffix": "family-default", "tags": ["tag-private", "tag-beta"]}
    assert "four" not in site["wikis"]


def test_dblists(farm):
    lists = exports.dblists(exports.farm_export())
    assert lists == {
        "all": ["one", "three", "two"],
        "archived": ["three"],
        "closed": ["three"],
        "family-default": ["one", "three", "two"],
        "tag-beta": ["one"],
        "tag-private": ["one"],
        # From the inventory; nothing is inspected yet, so no class is known.
        "size-large": [],
        "size-medium": [],
        "size-small": [],
        "size-unknown": ["one", "three", "two"],
        "size-xlarge": [],
    }


def test_write_exports_is_atomic_and_removes_stale_dblists(farm, settings, monkeypatch):
    target = exports.export_dir()
    (target / "dblists").mkdir(parents=True, exist_ok=True)
    (target / "dblists" / "tag-gone.dblist").write_text("old\n")
    result = exports.write_exports()
    farm_file = target / "farm.json"
    assert result["wikis"] == 3 and result["path"] == str(farm_file)
    assert result["wiki_files"] == 4  # three served, one tombstone
    assert result["etag"] == exports.file_etag(farm_file.stat())
    assert json.loads(farm_file.read_bytes()) == exports.farm_export()
    assert json.loads((target / "siteconfig.json").read_bytes()) == exports.siteconfig_export()
    assert (target / "dblists" / "tag-private.dblist").read_text() == "one\n"
    assert not (target / "dblists" / "tag-gone.dblist").exists()
    assert oct(farm_file.stat().st_mode & 0o777) == "0o644"
    before = farm_file.read_bytes()

    # A crash just before the rename: the old file stays whole and no temporary remains.
    Wiki.objects.filter(pk="two").update(sitename="Changed")

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        exports.write_exports()
    assert farm_file.read_bytes() == before
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".farm")) == []
    assert sorted(p.name for p in (target / "wikis").iterdir() if p.name.startswith(".")) == []


def test_export_query_count_does_not_grow_with_wikis(ops_user, settings):
    family = Family.objects.get(name="default")
    tags = [tag_create(actor=ops_user, name=f"t{n}", priority=n) for n in range(3)]

    def add_wikis(first: int, count: int) -> None:
        Wiki.objects.bulk_create(
            Wiki(
                id=f"w{n:04d}",
                family=family,
                sitename=f"Wiki {n}",
                state=WikiState.ACTIVE,
                database_name=f"wiki_w{n:04d}",
                storage_prefix=f"wikis/w{n:04d}/",
            )
            for n in range(first, first + count)
        )
        through = Wiki.tags.through
        through.objects.bulk_create(
            through(wiki_id=f"w{n:04d}", tag_id=tags[n % 3].pk) for n in range(first, first + count)
        )
        for n in range(first, first + count, 7):
            config.config_set(
                actor=ops_user, layer="wiki", target=f"w{n:04d}", setting="wgRawHtml", value=True
            )

    add_wikis(0, 5)
    with CaptureQueriesContext(connection) as few:
        exports.render_exports()
    add_wikis(5, 45)
    with CaptureQueriesContext(connection) as many:
        exports.render_exports()
    # 13: the size-class dblists read the classes in one more query, at any farm size.
    assert len(many.captured_queries) == len(few.captured_queries) <= 13
    export = exports.farm_export()
    assert len(export["wikis"]) == 50
    assert export["wikis"]["w0012"]["settings"]["wgRawHtml"] is True
    assert export["wikis"]["w0013"]["settings"]["wgRawHtml"] is False


def test_export_of_50_wikis_within_max_queries(ops_user, django_assert_max_num_queries):
    family = Family.objects.get(name="default")
    Wiki.objects.bulk_create(
        Wiki(
            id=f"x{n:03d}",
            family=family,
            sitename=f"X {n}",
            state=WikiState.ACTIVE,
            database_name=f"wiki_x{n:03d}",
            storage_prefix=f"wikis/x{n:03d}/",
        )
        for n in range(50)
    )
    with django_assert_max_num_queries(7):
        export = exports.farm_export()
    assert len(export["wikis"]) == 50


def test_etag_helpers(tmp_path):
    path = tmp_path / "file.json"
    path.write_bytes(b"abc")
    etag = exports.file_etag(path.stat())
    assert etag.startswith('"') and etag.endswith('"')
    assert exports.etag_matches(etag, etag)
    assert exports.etag_matches(f'"nope", W/{etag}', etag)
    assert exports.etag_matches("*", etag)
    assert not exports.etag_matches(None, etag)
    assert not exports.etag_matches('"nope"', etag)


def test_export_api_etag_and_304(farm, admin_user_a, auditor_user):
    client = APIClient()
    client.force_authenticate(auditor_user)
    for url, content_type in (
        ("/api/v1/exports/farm.json", "application/json"),
        ("/api/v1/exports/siteconfig.json", "application/json"),
        ("/api/v1/exports/dblists/tag-private.dblist", "text/plain; charset=utf-8"),
    ):
        first = client.get(url)
        assert first.status_code == 200, first.content
        assert first["Content-Type"] == content_type
        relative = url.removeprefix("/api/v1/exports/")
        assert first["ETag"] == exports.file_etag((exports.export_dir() / relative).stat())
        again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
        assert again.status_code == 304 and again.content == b""
        assert again["ETag"] == first["ETag"]
    farm_json = client.get("/api/v1/exports/farm.json")
    assert json.loads(b"".join(farm_json.streaming_content)) == exports.farm_export()
    dblist = client.get("/api/v1/exports/dblists/tag-private.dblist")
    assert b"".join(dblist.streaming_content) == b"one\n"
    assert client.get("/api/v1/exports/dblists/").json()["all"] == 3
    assert client.get("/api/v1/exports/dblists/nope.dblist").status_code == 404

    # a change gives a new ETag once it is published, so the old one no longer matches
    config.config_set(actor=farm, layer="default", setting="wgRightsText", value="CC BY")
    publishing.publish(respect_window=False)
    changed = client.get("/api/v1/exports/farm.json", HTTP_IF_NONE_MATCH=farm_json["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != farm_json["ETag"]

    # exports list every wiki: not for wiki admins, not for anonymous callers
    client.force_authenticate(admin_user_a)
    assert client.get("/api/v1/exports/farm.json").status_code == 403
    client.force_authenticate(None)
    assert client.get("/api/v1/exports/farm.json").status_code in (401, 403)


def test_export_command_writes_and_checks(farm, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("export_farm")
    assert "with 3 wikis" in capsys.readouterr().out
    call_command("export_farm", "--check")
    assert "up to date" in capsys.readouterr().out
    Wiki.objects.filter(pk="one").update(sitename="Behind")
    with pytest.raises(CommandError, match="farm.json"):
        call_command("export_farm", "--check")
