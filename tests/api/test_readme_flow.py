"""The curl flow of docs/api.md, request by request, with the Django test client: a script
with tokens creates, archives, asks to unarchive, approves (ops) and purges a wiki,
following each operation to its end. The engine is driven by run_pending where a worker
would run it."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from farm.models import Wiki
from tests.api.conftest import API, session_client
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db


def script(token: str) -> APIClient:
    """What curl sends: the token header and JSON bodies."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def new_token(user, scope: str) -> str:
    response = session_client(user).post(
        API + "/tokens/", {"name": f"script ({scope})", "scope": scope}, format="json"
    )
    assert response.status_code == 201
    return response.json()["token"]


def follow(client: APIClient, accepted) -> dict:
    """Poll the Location of a 202 until the operation ends (a worker runs it meanwhile)."""
    assert accepted.status_code == 202, accepted.content
    location = accepted["Location"]
    for _ in range(20):
        operation = client.get(location).json()
        if operation["state"] in ("succeeded", "failed"):
            return operation
        run_pending()
    raise AssertionError(f"operation {location} never ended")


def test_readme_flow(farm_drivers, admin_user_a, ops_user):
    alice = script(new_token(admin_user_a, "write"))
    ops = script(new_token(ops_user, "ops"))

    # 1. create
    created = alice.post(
        API + "/wikis/",
        {"id": "alpha", "family": "default", "sitename": "Alpha"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="create-alpha-1",
    )
    operation = follow(alice, created)
    assert operation["state"] == "succeeded" and operation["progress"] == 1.0
    assert alice.get(API + "/wikis/alpha/").json()["state"] == "active"

    # 2. archive
    operation = follow(alice, alice.post(API + "/wikis/alpha/archive/", format="json"))
    assert operation["state"] == "succeeded"
    archived = alice.get(API + "/wikis/alpha/").json()
    assert archived["state"] == "archived" and archived["resources"]["archive"]["database_tables"]

    # 3. ask for an unarchive; ops approve it
    request = alice.post(
        API + "/unarchive-requests/", {"wiki": "alpha", "reason": "project restarts"}, format="json"
    )
    assert request.status_code == 201
    pending = ops.get(API + "/unarchive-requests/?state=pending").json()["results"]
    assert [r["wiki"] for r in pending] == ["alpha"]
    approved = ops.post(f"{API}/unarchive-requests/{pending[0]['id']}/approve/", {}, format="json")
    assert follow(ops, approved)["state"] == "succeeded"
    assert alice.get(API + "/wikis/alpha/").json()["state"] == "active"

    # 4. purge (ops, with the id typed again)
    purge = ops.post(API + "/wikis/alpha/purge/", {"confirm": "alpha"}, format="json")
    assert follow(ops, purge)["state"] == "succeeded"
    tombstone = Wiki.objects.get(pk="alpha")
    assert tombstone.state == "purged"
    assert tombstone.purge_receipt["verification"]["database_exists"] is False
