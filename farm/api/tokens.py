"""API token writes and lookups. The secret is generated here, returned once and stored
only as its sha256: a leaked database does not leak working tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from farm.audit import audit
from farm.errors import InvalidInput, NotAllowed
from farm.models import ApiToken, ApiTokenScope
from farm.roles import is_ops, may_create_wikis
from farm.validators import check_text

TOKEN_MARK = "wft_"  # noqa: S105  (marks our tokens in logs and secret scanners)
PREFIX_HEX_CHARS = 8
# Writing last_used_at on every request would turn each read into a write; a minute is
# precise enough to tell a token in use from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def _check_scope(actor, scope: object, via_token: ApiToken | None) -> str:
    if scope not in ApiTokenScope.values:
        raise InvalidInput(
            f"scope must be one of {ApiTokenScope.values}", field="scope", rule="choice"
        )
    if scope == ApiTokenScope.OPS and not is_ops(actor):
        raise NotAllowed("only ops may hold ops-scoped tokens", field="scope", rule="role:ops")
    if scope == ApiTokenScope.WRITE and not may_create_wikis(actor):
        raise NotAllowed(
            "only wiki admins and ops may hold write-scoped tokens",
            field="scope",
            rule="role:wiki-admin",
        )
    if via_token is not None and not via_token.allows(scope):
        # A token may mint tokens, but never one stronger than itself.
        raise NotAllowed(
            f"a {via_token.scope}-scoped token cannot create a {scope}-scoped token",
            field="scope",
            rule="scope<=caller",
        )
    return scope


def _check_lifetime(expires_in_days: object) -> int:
    longest = settings.FARM_API_TOKEN_MAX_DAYS
    if expires_in_days is None:
        return settings.FARM_API_TOKEN_DEFAULT_DAYS
    if not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= longest:
        raise InvalidInput(
            f"expires_in_days must be an integer from 1 to {longest}",
            field="expires_in_days",
            rule=f"range:1..{longest}",
        )
    return expires_in_days


@transaction.atomic
def token_create(
    *,
    actor,
    name: object,
    scope: object,
    expires_in_days: object = None,
    via_token: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `actor`; return it with the raw secret, which is never stored."""
    name = check_text(name, field="name", max_length=100)
    scope = _check_scope(actor, scope, via_token)
    days = _check_lifetime(expires_in_days)
    prefix = TOKEN_MARK + secrets.token_hex(PREFIX_HEX_CHARS // 2)
    raw = f"{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        owner=actor,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(raw),
        scope=scope,
        expires_at=timezone.now() + timedelta(days=days),
    )
    audit(
        actor=actor,
        action="api_token.create",
        target=token,
        after={
            "name": name,
            "scope": scope,
            "prefix": prefix,
            "expires_at": token.expires_at.isoformat(),
        },
    )
    return token, raw


@transaction.atomic
def token_revoke(*, actor, token: ApiToken) -> ApiToken:
    """Owners revoke their own tokens, ops any; revoking twice is harmless."""
    if token.owner_id != actor.pk and not is_ops(actor):
        raise NotAllowed("only the token's owner or ops may revoke it")
    if token.revoked_at is not None:
        return token
    now = timezone.now()
    if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        return token  # revoked meanwhile by someone else
    token.revoked_at = now
    audit(actor=actor, action="api_token.revoke", target=token, after={"prefix": token.prefix})
    return token


class TokenRefused(Exception):
    """The secret names no usable token; the message says why, without revealing more."""


def token_for_secret(raw_token: str) -> ApiToken:
    """The live token behind a secret (its last use recorded), or TokenRefused."""
    token = (
        ApiToken.objects.select_related("owner").filter(secret_hash=hash_secret(raw_token)).first()
    )
    now = timezone.now()
    if token is None or not token.owner.is_active:
        raise TokenRefused("Invalid token.")
    if token.revoked_at is not None:
        raise TokenRefused("Token revoked.")
    if token.expires_at <= now:
        raise TokenRefused("Token expired.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
