import io

import pytest
from django.core.management import CommandError, call_command

from farm.api.tokens import hash_secret
from farm.models import ApiToken

pytestmark = pytest.mark.django_db


def test_prints_a_working_secret_that_is_stored_only_hashed(admin_user_a, client):
    out = io.StringIO()
    call_command("api_token", "alice", "--scope", "write", stdout=out, stderr=io.StringIO())
    secret = out.getvalue().strip()

    token = ApiToken.objects.get(owner=admin_user_a)
    assert token.scope == "write"
    assert secret not in {token.prefix, token.secret_hash} and token.secret_hash == hash_secret(
        secret
    )
    response = client.get("/api/v1/wikis/", HTTP_AUTHORIZATION=f"Token {secret}")
    assert response.status_code == 200


def test_refuses_a_scope_above_the_users_role(admin_user_a):
    with pytest.raises(CommandError, match="only ops may hold ops-scoped tokens"):
        call_command("api_token", "alice", "--scope", "ops", stderr=io.StringIO())
    assert not ApiToken.objects.exists()


def test_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="no active user 'nobody'"):
        call_command("api_token", "nobody")
