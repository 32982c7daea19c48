"""API test fixtures: clients per role, tokens, and wikis brought into each state through
the services and the engine (never by writing lifecycle fields directly)."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from farm.api.tokens import token_create
from farm.models import Wiki
from provisioning import services
from provisioning.models import Operation, OperationState
from tests.provisioning.helpers import run_pending

API = "/api/v1"

# A real value for each path parameter of the schema, one every route using it accepts.
PATH_EXAMPLES = {
    "id": "1",
    "name": "default",
    "wiki_id": "alpha",
    "layer": "wiki",
    "target": "alpha",
    "setting": "wgRightsText",
}


def example_path(path: str, operation: dict) -> str:
    """A schema path with each parameter replaced by its example, which must satisfy the
    pattern the schema documents for it: a path the URLs really answer."""
    patterns = {
        parameter["name"]: parameter["schema"].get("pattern")
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }

    def example(match: re.Match) -> str:
        name = match[1]
        assert name in PATH_EXAMPLES, f"add an example for the path parameter {name!r}"
        value = PATH_EXAMPLES[name]
        pattern = patterns.get(name)
        assert pattern is None or re.search(pattern, value), f"{value!r} breaks {pattern!r}"
        return value

    return re.sub(r"\{(\w+)\}", example, path)


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Throttle counters and the OIDC userinfo cache live in the cache: none leaks across tests.
    cache.clear()
    yield
    cache.clear()


def session_client(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def token_client(user, scope: str, **kwargs) -> tuple[APIClient, str]:
    _, raw = token_create(actor=user, name=f"{scope} token", scope=scope, **kwargs)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client, raw


def active_wiki(owner, wiki_id: str) -> Wiki:
    operation = services.wiki_create(
        actor=owner, wiki_id=wiki_id, family="default", sitename=wiki_id
    )
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return Wiki.objects.get(pk=wiki_id)


def archived_wiki(owner, wiki_id: str) -> Wiki:
    active_wiki(owner, wiki_id)
    services.wiki_archive(actor=owner, wiki_id=wiki_id)
    run_pending()
    return Wiki.objects.get(pk=wiki_id)


def failed_create(owner, wiki_id: str, drivers_root) -> Operation:
    """A create that fails for real: a database with the wiki's name already exists."""
    (drivers_root / "databases").mkdir(parents=True, exist_ok=True)
    (drivers_root / "databases" / f"wiki_{wiki_id}.sqlite").write_bytes(b"")
    operation = services.wiki_create(
        actor=owner, wiki_id=wiki_id, family="default", sitename=wiki_id
    )
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    return operation


@pytest.fixture
def wiki_factory(farm_drivers, tmp_path):
    """Wikis in the states a test needs; `tmp_path` is where farm_drivers keeps resources."""

    class Factory:
        active = staticmethod(active_wiki)
        archived = staticmethod(archived_wiki)

        @staticmethod
        def failed(owner, wiki_id):
            return failed_create(owner, wiki_id, tmp_path)

    return Factory
