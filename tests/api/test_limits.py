"""The per-user creation rate limit (429 + Retry-After) and the wiki quota (the service's)."""

from __future__ import annotations

import pytest

from farm.models import Wiki
from tests.api.conftest import API, session_client, token_client

pytestmark = pytest.mark.django_db


def create(client, wiki_id):
    return client.post(API + "/wikis/", {"id": wiki_id, "sitename": wiki_id}, format="json")


def test_creation_rate_limit_answers_429_with_retry_after(farm_drivers, admin_user_a, settings):
    settings.FARM_API_CREATE_RATE = "2/hour"
    client, _ = token_client(admin_user_a, "write")
    assert create(client, "alpha").status_code == 202
    assert create(client, "beta").status_code == 202
    limited = create(client, "gamma")
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 0 < int(limited["Retry-After"]) <= 3600
    assert not Wiki.objects.filter(pk="gamma").exists()


def test_rate_limit_is_per_user_and_only_for_creation(
    wiki_factory, admin_user_a, admin_user_b, settings
):
    settings.FARM_API_CREATE_RATE = "1/hour"
    alice = session_client(admin_user_a)
    assert create(alice, "alpha").status_code == 202
    assert create(alice, "beta").status_code == 429
    assert create(session_client(admin_user_b), "gamma").status_code == 202
    # Other POSTs are not creations: alice can still archive.
    wiki_factory.active(admin_user_a, "delta")
    assert alice.post(API + "/wikis/delta/archive/", {}, format="json").status_code == 202


def test_rate_limit_can_be_switched_off(farm_drivers, admin_user_a, settings):
    settings.FARM_API_CREATE_RATE = ""
    settings.FARM_WIKI_QUOTA = 100
    client = session_client(admin_user_a)
    assert all(create(client, f"wiki{n}").status_code == 202 for n in range(35))


def test_quota_comes_from_the_service(farm_drivers, admin_user_a, ops_user, settings):
    settings.FARM_WIKI_QUOTA = 2
    client = session_client(admin_user_a)
    assert create(client, "alpha").status_code == 202
    assert create(client, "beta").status_code == 202
    over = create(client, "gamma")
    assert over.status_code == 429
    assert over.json()["code"] == "quota_exceeded"
    assert over.json()["rule"] == "quota:2"
    assert not Wiki.objects.filter(pk="gamma").exists()
    # Ops are not bound by the quota.
    assert create(session_client(ops_user), "gamma").status_code == 202
