"""Roles are Django groups; the OIDC groups claim maps onto the same names."""

from __future__ import annotations

WIKI_ADMIN = "wiki-admin"
OPS = "ops"
AUDITOR = "auditor"
ROLES = (WIKI_ADMIN, OPS, AUDITOR)


def has_role(user, role: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    # Group names are cached per user object so a page of checks costs one query.
    if not hasattr(user, "_farm_roles"):
        user._farm_roles = set(user.groups.values_list("name", flat=True))
    return role in user._farm_roles


def is_ops(user) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or has_role(user, OPS)))


def sees_all_wikis(user) -> bool:
    return is_ops(user) or has_role(user, AUDITOR)


def may_create_wikis(user) -> bool:
    return is_ops(user) or has_role(user, WIKI_ADMIN)
