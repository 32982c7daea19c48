"""create -> archive -> unarchive -> purge with the embedded drivers, resources checked directly."""

import sqlite3

import pytest

from farm.models import Wiki, WikiState
from provisioning import services
from provisioning.demo import index_demo_pages
from provisioning.drivers import database_driver, search_driver, storage_driver
from provisioning.models import OperationState
from provisioning.steps import wiki_resources
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db


def test_full_lifecycle_with_resources_checked(farm_drivers, ops_user, admin_user_a, tmp_path):
    operation = services.wiki_create(
        actor=admin_user_a, wiki_id="alpha", family="default", sitename="Alpha"
    )
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    wiki = Wiki.objects.get(pk="alpha")
    assert wiki.state == WikiState.ACTIVE
    db_file = tmp_path / "databases" / "wiki_alpha.sqlite"
    tables = {
        r[0]
        for r in sqlite3.connect(db_file).execute(
            "select name from sqlite_master where type='table'"
        )
    }
    assert {"page", "revision", "text", "user", "site_stats"} <= tables
    assert (tmp_path / "storage" / "wikis" / "alpha" / ".wiki-farm.json").exists()

    resources = wiki_resources(wiki)
    index_demo_pages(wiki, pages=30)
    storage_driver().put_file(resources, "images/a/ab/Logo.png", b"png" * 100)
    rows_before = database_driver().inspect(resources).details["table_rows"]

    services.wiki_archive(actor=admin_user_a, wiki_id="alpha")
    run_pending()
    wiki.refresh_from_db()
    assert wiki.state == WikiState.ARCHIVED and wiki.read_only and wiki.purge_after
    assert not db_file.exists()
    assert search_driver().inspect(resources).counts.get("wikipage", 0) == 0
    assert wiki.archive_manifest["search"]["documents"] == 30
    assert wiki.archive_manifest["storage"]["objects"] == 2

    request = services.unarchive_request(actor=admin_user_a, wiki_id="alpha", reason="needed again")
    services.unarchive_approve(actor=ops_user, request_id=request.pk)
    run_pending()
    wiki.refresh_from_db()
    assert wiki.state == WikiState.ACTIVE and not wiki.read_only
    assert database_driver().inspect(resources).details["table_rows"] == rows_before
    assert search_driver().inspect(resources).counts["wikipage"] == 30

    services.wiki_purge(actor=ops_user, wiki_id="alpha", confirm="alpha")
    run_pending()
    wiki.refresh_from_db()
    assert wiki.state == WikiState.PURGED
    assert not db_file.exists()
    assert not (tmp_path / "storage" / "wikis" / "alpha").exists()
    assert not (tmp_path / "storage" / "archives" / "alpha").exists()
    assert search_driver().inspect(resources).exists is False
    receipt = wiki.purge_receipt
    assert receipt["removed"]["search"]["documents_deleted"] == 30
    assert receipt["removed"]["storage"]["archive_objects_deleted"] == 3
    assert receipt["verification"] == {
        "database_exists": False,
        "storage_objects": 0,
        "search_documents": 0,
        "config_values": 0,
    }
