"""Shared fixtures: fresh drivers per test in its own folder, users for each role.

The session's private data dir is set by tests/isolation.py, loaded before Django starts.
"""

import pytest
from django.contrib.auth.models import Group

from farm.roles import AUDITOR, OPS, WIKI_ADMIN
from provisioning.drivers import reset_drivers


def embedded_drivers(root) -> dict:
    """The embedded default's drivers, rooted in `root`."""
    from django.conf import settings

    database = (
        dict(settings.FARM_DRIVERS["database"]["options"])
        if "sqlite" in settings.FARM_DRIVERS["database"]["class"]
        else {}
    )
    return {
        "database": {
            "class": "provisioning.drivers.sqlite.SQLiteDatabaseDriver",
            "options": {
                "root": root / "databases",
                "schema_sql": settings.FARM_SCHEMA_SQL,
                "table_prefix": "",
                "post_create_hook": database.get("post_create_hook", ""),
            },
        },
        "storage": {
            "class": "provisioning.drivers.filesystem.FilesystemStorageDriver",
            "options": {"root": root / "storage"},
        },
        "search": {
            "class": "provisioning.drivers.local_search.LocalSearchDriver",
            "options": {"path": root / "search.sqlite3"},
        },
    }


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Users are made per test; PBKDF2's deliberate slowness would dominate the suite.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # No MediaWiki is serving the wikis of most tests: nothing to drain before a drop.
    settings.FARM_OFFLINE_DRAIN_SECONDS = 0


@pytest.fixture
def farm_drivers(settings, tmp_path):
    """Embedded drivers in this test's own folder; returns the FARM_DRIVERS in force."""
    settings.FARM_DRIVERS = embedded_drivers(tmp_path)
    settings.DATA_DIR = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "farm_archives": {
            "BACKEND": "provisioning.sinks.AtomicFileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "storage"), "allow_overwrite": True},
        },
    }
    reset_drivers()
    yield settings.FARM_DRIVERS
    reset_drivers()


def make_user(django_user_model, username: str, role: str | None):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def ops_user(db, django_user_model):
    return make_user(django_user_model, "opsuser", OPS)


@pytest.fixture
def admin_user_a(db, django_user_model):
    return make_user(django_user_model, "alice", WIKI_ADMIN)


@pytest.fixture
def admin_user_b(db, django_user_model):
    return make_user(django_user_model, "bob", WIKI_ADMIN)


@pytest.fixture
def auditor_user(db, django_user_model):
    return make_user(django_user_model, "audrey", AUDITOR)
