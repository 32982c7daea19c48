"""The lifecycle again, on the production drivers: MariaDB, S3 (OpenStack Swift), and
OpenSearch when OPENSEARCH_URL points at a cluster (the local index otherwise)."""

import os
import secrets

import MySQLdb
import pytest

from farm.models import Wiki, WikiState
from provisioning import services
from provisioning.demo import index_demo_pages
from provisioning.drivers import database_driver, reset_drivers, search_driver, storage_driver
from provisioning.models import OperationState
from provisioning.steps import wiki_resources
from tests import swift_server
from tests.provisioning.helpers import run_pending
from tests.services import port_open, service_unavailable

swift_s3 = swift_server.swift_s3
pytestmark = [pytest.mark.django_db, pytest.mark.mariadb, pytest.mark.swift, pytest.mark.slow]

MARIADB_URL = os.environ.get("TEST_FARM_DB_URL", "mysql://root:@127.0.0.1:3306/")


@pytest.fixture
def production_drivers(settings, tmp_path, swift_s3):
    if not port_open("127.0.0.1", 3306):
        service_unavailable("MariaDB is not listening on 127.0.0.1:3306")
    bucket = f"farm-test-{secrets.token_hex(4)}"
    search = {
        "class": "provisioning.drivers.local_search.LocalSearchDriver",
        "options": {"path": tmp_path / "search.sqlite3"},
    }
    if os.environ.get("OPENSEARCH_URL"):
        search = {
            "class": "provisioning.drivers.opensearch.OpenSearchDriver",
            "options": {"url": os.environ["OPENSEARCH_URL"], "index_prefix": bucket + "-"},
        }
    settings.DATA_DIR = tmp_path
    settings.FARM_DRIVERS = {
        "database": {
            "class": "provisioning.drivers.mariadb.MariaDBDatabaseDriver",
            "options": {
                "url": MARIADB_URL,
                "clusters": {},
                "schema_sql": settings.FARM_SCHEMA_SQL,
                "table_prefix": "",
                "post_create_hook": "",
            },
        },
        "storage": {
            "class": "provisioning.drivers.s3.S3StorageDriver",
            "options": {
                "bucket": bucket,
                "endpoint_url": swift_s3["endpoint_url"],
                "region": swift_s3["region"],
                "access_key": swift_s3["access_key"],
                "secret_key": swift_s3["secret_key"],
                "addressing_style": "path",
            },
        },
        "search": search,
    }
    # Archives go through django-storages' S3 backend into the same bucket, as in production.
    settings.STORAGES = {
        **settings.STORAGES,
        "farm_archives": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": swift_s3["endpoint_url"],
                "region_name": swift_s3["region"],
                "access_key": swift_s3["access_key"],
                "secret_key": swift_s3["secret_key"],
                "addressing_style": "path",
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": False,
                "object_parameters": {"ContentType": "application/octet-stream"},
            },
        },
    }
    reset_drivers()
    yield settings.FARM_DRIVERS
    reset_drivers()


def mariadb_has(database: str) -> bool:
    connection = MySQLdb.connect(host="127.0.0.1", user="root", passwd="")
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (database,)
        )
        return cursor.fetchone() is not None
    finally:
        connection.close()


def test_lifecycle_on_mariadb_and_swift(production_drivers, ops_user, admin_user_a):
    wiki_id = "prod" + secrets.token_hex(4)
    operation = services.wiki_create(
        actor=admin_user_a, wiki_id=wiki_id, family="default", sitename="Production"
    )
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    wiki = Wiki.objects.get(pk=wiki_id)
    resources = wiki_resources(wiki)
    assert mariadb_has(wiki.database_name)
    index_demo_pages(wiki, pages=40)
    storage_driver().put_file(resources, "images/1/12/Photo.jpg", b"jpeg" * 1000)
    counts_before = database_driver().inspect(resources).counts  # tables and pages, exact
    assert counts_before["pages"] == 1

    services.wiki_archive(actor=admin_user_a, wiki_id=wiki_id)
    run_pending()
    wiki.refresh_from_db()
    assert wiki.state == WikiState.ARCHIVED, wiki.operations.first().error
    assert not mariadb_has(wiki.database_name)
    assert wiki.archive_manifest["database"]["engine"] == "mariadb"
    # The dump's own exact row counts, which the restore checks the restored rows against.
    assert wiki.archive_manifest["database"]["table_rows"]["page"] == 1
    assert wiki.archive_manifest["search"]["documents"] == 40

    request = services.unarchive_request(actor=admin_user_a, wiki_id=wiki_id, reason="back")
    services.unarchive_approve(actor=ops_user, request_id=request.pk)
    run_pending()
    wiki.refresh_from_db()
    assert wiki.state == WikiState.ACTIVE, wiki.operations.first().error
    assert database_driver().inspect(resources).counts == counts_before
    assert sum(search_driver().inspect(resources).counts.values()) == 40

    services.wiki_purge(actor=ops_user, wiki_id=wiki_id, confirm=wiki_id)
    run_pending()
    wiki.refresh_from_db()
    assert wiki.state == WikiState.PURGED, wiki.operations.first().error
    assert not mariadb_has(wiki.database_name)
    storage = storage_driver().inspect(resources)
    assert storage.counts == {"objects": 0, "archive_objects": 0}
    assert not search_driver().inspect(resources).exists
    receipt = wiki.purge_receipt
    assert receipt["removed"]["database"]["existed"] is True
    assert receipt["removed"]["search"]["documents_deleted"] == 40
    # marker + photo in the namespace; database dump, search export and manifest archived
    assert receipt["removed"]["storage"] == {"objects_deleted": 2, "archive_objects_deleted": 3}
    assert receipt["verification"]["storage_objects"] == 0
