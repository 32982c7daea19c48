"""The probes: /healthz never touches a dependency; /readyz checks the registry, the cache,
the broker and the configured drivers against the real services, and names what failed."""

from __future__ import annotations

import pytest

from provisioning.drivers import reset_drivers
from tests.services import port_open, service_unavailable

pytestmark = pytest.mark.django_db

CLOSED_PORT = 1  # nothing listens there: connections are refused at once


@pytest.fixture
def redis_server():
    if not port_open("127.0.0.1", 6379):
        service_unavailable("Redis is not running on 127.0.0.1:6379")
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def mariadb_server():
    if not port_open("127.0.0.1", 3306):
        service_unavailable("MariaDB is not running on 127.0.0.1:3306")
    return "mysql://root:@127.0.0.1:3306/"


def use_driver(settings, kind: str, driver_class: str, **options) -> None:
    settings.FARM_DRIVERS = {
        **settings.FARM_DRIVERS,
        kind: {"class": driver_class, "options": options},
    }
    reset_drivers()


def test_liveness_answers_without_touching_any_dependency(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readiness_of_the_embedded_default(client, farm_drivers):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {
        "registry",
        "cache",
        "broker",
        "database_driver",
        "storage_driver",
        "search_driver",
    }
    assert set(body["checks"].values()) == {"ok"}


@pytest.mark.redis
def test_readiness_with_the_real_redis_broker(client, farm_drivers, settings, redis_server):
    settings.CELERY_BROKER_URL = redis_server
    response = client.get("/readyz")
    assert response.status_code == 200, response.content


def test_a_broker_that_does_not_answer_makes_it_unready(client, farm_drivers, settings):
    settings.CELERY_BROKER_URL = f"redis://:secret-pw@127.0.0.1:{CLOSED_PORT}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["failing"] == ["broker"]
    assert body["checks"]["broker"].startswith("Unavailable: broker (redis)")
    assert "secret-pw" not in response.content.decode()
    assert body["checks"]["registry"] == "ok"


def test_an_unwritable_filesystem_broker_folder_makes_it_unready(
    client, farm_drivers, settings, tmp_path
):
    settings.CELERY_BROKER_URL = "filesystem://localhost//"
    missing = tmp_path / "no-such-queue"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(missing),
        "data_folder_out": str(missing),
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


@pytest.mark.mariadb
def test_readiness_with_the_real_mariadb_driver(client, farm_drivers, settings, mariadb_server):
    use_driver(
        settings,
        "database",
        "provisioning.drivers.mariadb.MariaDBDatabaseDriver",
        url=mariadb_server,
        schema_sql=settings.FARM_SCHEMA_SQL,
    )
    response = client.get("/readyz")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("kind", "driver_class", "options"),
    [
        (
            "database",
            "provisioning.drivers.mariadb.MariaDBDatabaseDriver",
            {"url": f"mysql://root:db-pw@127.0.0.1:{CLOSED_PORT}/"},
        ),
        (
            "storage",
            "provisioning.drivers.s3.S3StorageDriver",
            {
                "bucket": "wikifarm",
                "endpoint_url": f"http://127.0.0.1:{CLOSED_PORT}",
                "access_key": "key",
                "secret_key": "s3-pw",
            },
        ),
        (
            "search",
            "provisioning.drivers.opensearch.OpenSearchDriver",
            {"url": f"http://127.0.0.1:{CLOSED_PORT}", "max_retries": 0},
        ),
    ],
    ids=["mariadb", "s3", "opensearch"],
)
def test_a_driver_url_that_does_not_answer_makes_it_unready(
    client, farm_drivers, settings, kind, driver_class, options
):
    if kind == "database":
        options = {**options, "schema_sql": settings.FARM_SCHEMA_SQL}
    use_driver(settings, kind, driver_class, **options)
    response = client.get("/readyz")
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["failing"] == [f"{kind}_driver"]
    assert body["checks"][f"{kind}_driver"].startswith("Unavailable: ")
    assert "-pw" not in response.content.decode()


def test_a_driver_configuration_it_refuses_makes_it_unready(client, farm_drivers, settings):
    use_driver(
        settings,
        "database",
        "provisioning.drivers.mariadb.MariaDBDatabaseDriver",
        url="postgres://db.example.org/",
        schema_sql=settings.FARM_SCHEMA_SQL,
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "database URL must look like mysql://" in response.json()["checks"]["database_driver"]


def test_probes_are_not_redirected_to_https(client, farm_drivers, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/login/").status_code == 301
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
