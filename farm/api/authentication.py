"""How a request says who it is: API tokens (scripts), the session (the UI) and, when an
OIDC provider is configured, its bearer access tokens."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from mozilla_django_oidc.contrib.drf import OIDCAuthentication
from rest_framework import authentication, exceptions

from farm.api.tokens import TokenRefused, token_for_secret

TOKEN_KEYWORD = "Token"  # noqa: S105  (the header keyword, not a secret)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <secret>`; sets request.auth to the ApiToken for scope checks."""

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != TOKEN_KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header: expected 'Token <secret>' with no spaces in the secret."
            )
        try:
            raw = parts[1].decode("ascii")
            token = token_for_secret(raw)
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        except TokenRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return token.owner, token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return TOKEN_KEYWORD


class CachedOIDCAuthentication(OIDCAuthentication):
    """OIDC bearer tokens, with the provider's userinfo answer cached for a short while:
    a script's burst of calls costs one round trip to the provider, not one per call."""

    def authenticate(self, request):
        access_token = self.get_access_token(request)
        if not access_token:
            return None
        cache_key = "farm:oidc-user:" + hashlib.sha256(access_token.encode()).hexdigest()
        user_id = cache.get(cache_key)
        if user_id is not None:
            user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
            if user is not None:
                return user, access_token
        user, access_token = super().authenticate(request)
        cache.set(cache_key, user.pk, settings.FARM_OIDC_USERINFO_CACHE_SECONDS)
        return user, access_token
