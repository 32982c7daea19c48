"""Who may call what. Which rows a caller sees is decided by the querysets (`for_user`) and
what they may change by the services; these classes add what only the API knows: a token's
scope, and that the audit log is for ops and auditors."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from farm.api.exceptions import ScopeTooNarrow
from farm.models import ApiToken, ApiTokenScope
from farm.roles import sees_all_wikis


def required_scope(request, view) -> str:
    """read for safe methods, ops for the actions a view lists as ops-only, else write."""
    if request.method in SAFE_METHODS:
        return ApiTokenScope.READ
    if getattr(view, "action", None) in getattr(view, "ops_scope_actions", ()):
        return ApiTokenScope.OPS
    return ApiTokenScope.WRITE


def require_token_scope(request, scope: str) -> None:
    """A token bounds its owner's rights: the user must be allowed and the token scoped."""
    token = request.auth
    if isinstance(token, ApiToken) and not token.allows(scope):
        raise ScopeTooNarrow(
            f"This token's scope is {token.scope!r}; this request needs {scope!r}."
        )


class TokenScope(BasePermission):
    def has_permission(self, request, view) -> bool:
        require_token_scope(request, required_scope(request, view))
        return True


class SeesAllWikis(BasePermission):
    message = "Only ops and auditors may read this."

    def has_permission(self, request, view) -> bool:
        return sees_all_wikis(request.user)
