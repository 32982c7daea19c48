"""Signing in through the OIDC provider: who a person is, and which roles they hold.

mozilla-django-oidc's defaults match users by e-mail and name new users with a hash of it.
An e-mail address is not an identity (it changes, and two accounts may share one), and the
portal shows user names everywhere (owners, audit log), so users are matched and named by
one claim (OIDC_USERNAME_CLAIM, `preferred_username` unless told otherwise). Roles come from
the groups claim (OIDC_GROUPS_CLAIM) through FARM_OIDC_ROLE_MAP, on every login: a change
at the provider takes effect the next time the person signs in.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from farm.management.commands.farm_seed_demo import DEMO_USERS
from farm.roles import OPS, ROLES

logger = logging.getLogger(__name__)
USERNAME_MAX_LENGTH = 150
DEMO_CREDENTIALS = frozenset((username, password) for username, _, password in DEMO_USERS)


def username_from_claims(claims: dict) -> str | None:
    """The user name the claims give, or None when it is missing or not a valid one."""
    value = claims.get(settings.OIDC_USERNAME_CLAIM)
    if not isinstance(value, str) or not 0 < len(value) <= USERNAME_MAX_LENGTH:
        return None
    try:
        UnicodeUsernameValidator()(value)
    except ValidationError:
        return None
    return value


def roles_from_claims(claims: dict) -> set[str]:
    """The portal roles the provider's groups map to; unknown groups are ignored."""
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = groups.split()
    if not isinstance(groups, list):
        return set()
    role_map = settings.FARM_OIDC_ROLE_MAP
    return {role_map[g] for g in groups if isinstance(g, str) and role_map.get(g) in ROLES}


class FarmOIDCBackend(OIDCAuthenticationBackend):
    """Users matched by user name, roles synchronised from the groups claim."""

    def describe_user_by_claims(self, claims: dict) -> str:
        return f"{settings.OIDC_USERNAME_CLAIM} {claims.get(settings.OIDC_USERNAME_CLAIM)!r}"

    def verify_claims(self, claims: dict) -> bool:
        if username_from_claims(claims) is None:
            logger.warning("OIDC login refused: no valid %s claim", settings.OIDC_USERNAME_CLAIM)
            return False
        return True

    def filter_users_by_claims(self, claims: dict):
        username = username_from_claims(claims)
        if username is None:
            return self.UserModel.objects.none()
        return self.UserModel.objects.filter(username=username)

    def get_username(self, claims: dict) -> str:
        return username_from_claims(claims) or ""

    @transaction.atomic
    def create_user(self, claims: dict):
        user = self.UserModel.objects.create_user(self.get_username(claims))
        user.set_unusable_password()  # the provider holds the credential
        return self.update_user(user, claims)

    @transaction.atomic
    def update_user(self, user, claims: dict):
        email = claims.get("email")
        if isinstance(email, str) and email != user.email:
            user.email = email[:254]
        roles = roles_from_claims(claims)
        # Ops manage the registry in the Django admin, which needs is_staff.
        user.is_staff = OPS in roles or user.is_superuser
        user.save()
        sync_roles(user, roles)
        return user


def sync_roles(user, roles: set[str]) -> None:
    """Give `user` exactly these roles; groups that are not roles are left alone."""
    kept = list(user.groups.exclude(name__in=ROLES))
    role_groups = [Group.objects.get_or_create(name=role)[0] for role in sorted(roles)]
    user.groups.set(kept + role_groups)
    if hasattr(user, "_farm_roles"):
        del user._farm_roles  # farm.roles caches a user's groups on the object


def provider_logout_url(request) -> str:
    """Where logging out sends the browser: the provider's end_session endpoint (so the
    provider's session ends too) and from there back to the login page."""
    after_logout = request.build_absolute_uri(reverse(settings.LOGOUT_REDIRECT_URL))
    endpoint = getattr(settings, "OIDC_OP_LOGOUT_ENDPOINT", "")
    if not endpoint:
        return after_logout
    query = {"post_logout_redirect_uri": after_logout, "client_id": settings.OIDC_RP_CLIENT_ID}
    id_token = request.session.get("oidc_id_token")
    if id_token:
        query["id_token_hint"] = id_token
    return f"{endpoint}?{urlencode(query)}"


class LocalAccountsBackend(ModelBackend):
    """Django's password login (the demo login, the admin), refusing the demo accounts'
    published passwords unless the demo is on: with production settings they never work,
    even in a registry that was seeded with them once."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.FARM_DEMO and (username, password) in DEMO_CREDENTIALS:
            logger.warning("Demo credentials refused for %r: the demo is off", username)
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
