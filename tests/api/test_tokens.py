"""API tokens: shown once, stored hashed, scoped, expiring, revocable; and OIDC bearer
tokens with a short userinfo cache, against a real HTTP userinfo endpoint."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from farm.api.authentication import CachedOIDCAuthentication
from farm.models import ApiToken, AuditEvent
from tests.api.conftest import API, session_client, token_client

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client


def test_token_is_shown_once_and_stored_hashed(admin_user_a):
    created = session_client(admin_user_a).post(
        API + "/tokens/", {"name": "ci", "scope": "write", "expires_in_days": 7}, format="json"
    )
    assert created.status_code == 201
    raw = created.json()["token"]
    token = ApiToken.objects.get(pk=created.json()["id"])
    assert token.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values().first())
    assert raw.startswith(token.prefix) and created.json()["prefix"] == token.prefix
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)
    listed = bearer(raw).get(API + "/tokens/").json()["results"]
    assert [t["id"] for t in listed] == [token.pk] and "token" not in listed[0]
    assert "token" not in bearer(raw).get(API + f"/tokens/{token.pk}/").json()
    assert AuditEvent.objects.filter(action="api_token.create", target_id=str(token.pk)).exists()
    assert raw not in str(list(AuditEvent.objects.values()))


def test_a_token_authenticates_its_owner_and_records_its_use(wiki_factory, admin_user_a):
    wiki_factory.active(admin_user_a, "alpha")
    client, raw = token_client(admin_user_a, "read")
    token = ApiToken.objects.get()
    assert token.last_used_at is None
    response = client.get(API + "/wikis/")
    assert response.status_code == 200
    assert [w["id"] for w in response.json()["results"]] == ["alpha"]
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_read_scope_cannot_write(wiki_factory, admin_user_a):
    wiki_factory.active(admin_user_a, "alpha")
    client, _ = token_client(admin_user_a, "read")
    response = client.post(API + "/wikis/alpha/archive/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "token_scope"
    assert client.patch(API + "/wikis/alpha/", {"sitename": "B"}, format="json").status_code == 403
    assert (
        client.post(API + "/tokens/", {"name": "x", "scope": "read"}, format="json").status_code
        == 403
    )


def test_write_scope_cannot_do_ops_actions_even_for_ops(wiki_factory, admin_user_a, ops_user):
    wiki_factory.archived(admin_user_a, "alpha")
    write, _ = token_client(ops_user, "write")
    purge = {"confirm": "alpha"}
    assert write.post(API + "/wikis/alpha/purge/", purge, format="json").status_code == 403
    assert write.post(API + "/tags/", {"name": "private"}, format="json").status_code == 403
    ops, _ = token_client(ops_user, "ops")
    assert ops.post(API + "/wikis/alpha/purge/", purge, format="json").status_code == 202


def test_scope_cannot_exceed_the_role_or_the_calling_token(admin_user_a, auditor_user, ops_user):
    alice = session_client(admin_user_a)
    too_much = alice.post(API + "/tokens/", {"name": "x", "scope": "ops"}, format="json")
    assert too_much.status_code == 403 and too_much.json()["field"] == "scope"
    auditor = session_client(auditor_user)
    assert (
        auditor.post(API + "/tokens/", {"name": "x", "scope": "write"}, format="json").status_code
        == 403
    )
    write, _ = token_client(ops_user, "write")
    escalate = write.post(API + "/tokens/", {"name": "x", "scope": "ops"}, format="json")
    assert escalate.status_code == 403 and escalate.json()["rule"] == "scope<=caller"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scope": "admin"},
        {"name": "x", "scope": "read", "expires_in_days": 0},
        {"name": "x", "scope": "read", "expires_in_days": 10_000},
        {"name": "x", "scope": "read", "expires_in_days": "7"},
        {"name": "", "scope": "read"},
        {"name": "x", "scope": "read", "owner": "bob"},
    ],
)
def test_bad_token_requests_are_400(admin_user_a, body):
    response = session_client(admin_user_a).post(API + "/tokens/", body, format="json")
    assert response.status_code == 400, response.content
    assert not ApiToken.objects.exists()


def test_expired_and_revoked_tokens_are_refused(admin_user_a):
    client, raw = token_client(admin_user_a, "read")
    token = ApiToken.objects.get()
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = client.get(API + "/wikis/")
    assert expired.status_code == 401 and expired.json()["message"] == "Token expired."
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(days=1))
    assert client.get(API + "/wikis/").status_code == 200
    assert session_client(admin_user_a).delete(API + f"/tokens/{token.pk}/").status_code == 204
    revoked = client.get(API + "/wikis/")
    assert revoked.status_code == 401 and revoked.json()["message"] == "Token revoked."
    token.refresh_from_db()
    assert token.revoked_at is not None  # kept as a record


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token wft_nope", "Token \u00e9t\u00e9"])
def test_malformed_or_unknown_tokens_are_401(db, header):
    client = APIClient()
    response = client.get(API + "/wikis/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Token"


def test_owners_revoke_their_own_and_ops_any(admin_user_a, admin_user_b, ops_user):
    token_client(admin_user_a, "read")
    token = ApiToken.objects.get()
    bob = session_client(admin_user_b)
    assert bob.delete(API + f"/tokens/{token.pk}/").status_code == 404
    ops_write, _ = token_client(ops_user, "write")
    assert ops_write.delete(API + f"/tokens/{token.pk}/").status_code == 403  # needs ops scope
    ops, _ = token_client(ops_user, "ops")
    assert ops.delete(API + f"/tokens/{token.pk}/").status_code == 204
    assert AuditEvent.objects.filter(action="api_token.revoke", actor_name="opsuser").exists()


def test_a_deactivated_user_s_token_stops_working(admin_user_a):
    client, _ = token_client(admin_user_a, "read")
    admin_user_a.is_active = False
    admin_user_a.save()
    assert client.get(API + "/wikis/").status_code == 401


# --- OIDC bearer -------------------------------------------------------------------------


@pytest.fixture
def oidc_provider(httpserver, settings):
    """A real HTTP userinfo endpoint; mozilla-django-oidc maps its email to a user."""
    settings.OIDC_OP_USER_ENDPOINT = httpserver.url_for("/userinfo")
    settings.OIDC_OP_TOKEN_ENDPOINT = httpserver.url_for("/token")
    settings.OIDC_RP_CLIENT_ID = "portal"
    settings.OIDC_RP_CLIENT_SECRET = "secret"
    settings.OIDC_RP_SIGN_ALGO = "HS256"
    settings.OIDC_DRF_AUTH_BACKEND = "mozilla_django_oidc.auth.OIDCAuthenticationBackend"
    settings.OIDC_CREATE_USER = False
    settings.FARM_OIDC_USERINFO_CACHE_SECONDS = 60
    return httpserver


def userinfo_calls(server) -> int:
    return sum(1 for request, _ in server.log if request.path == "/userinfo")


def oidc_request(access_token: str):
    return Request(
        APIRequestFactory().get("/api/v1/wikis/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    )


def test_oidc_bearer_token_is_looked_up_once_then_cached(oidc_provider, admin_user_a):
    admin_user_a.email = "alice@example.org"
    admin_user_a.save()
    oidc_provider.expect_request("/userinfo").respond_with_json(
        {"sub": "alice-sub", "email": "alice@example.org"}
    )
    first = CachedOIDCAuthentication().authenticate(oidc_request("access-1"))
    second = CachedOIDCAuthentication().authenticate(oidc_request("access-1"))
    assert first[0] == second[0] == admin_user_a
    assert userinfo_calls(oidc_provider) == 1
    CachedOIDCAuthentication().authenticate(oidc_request("access-2"))
    assert userinfo_calls(oidc_provider) == 2


def test_oidc_token_the_provider_rejects_is_refused(oidc_provider):
    oidc_provider.expect_request("/userinfo").respond_with_data(
        "",
        status=401,
        headers={"WWW-Authenticate": 'error="invalid_token", error_description="token expired"'},
    )
    with pytest.raises(AuthenticationFailed, match="token expired"):
        CachedOIDCAuthentication().authenticate(oidc_request("stale"))
    # A refusal is not cached: the next call asks the provider again.
    with pytest.raises(AuthenticationFailed):
        CachedOIDCAuthentication().authenticate(oidc_request("stale"))
    assert userinfo_calls(oidc_provider) == 2
