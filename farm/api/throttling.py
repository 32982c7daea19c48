"""The per-user rate limit on wiki creation (the quota itself is the service's business)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class WikiCreateRateThrottle(SimpleRateThrottle):
    """FARM_API_CREATE_RATE creations per user, e.g. "30/hour"; read per request so ops can
    change it without touching code. DRF answers 429 with Retry-After when it is spent."""

    scope = "wiki_create"

    def get_rate(self) -> str | None:
        return settings.FARM_API_CREATE_RATE or None

    def get_cache_key(self, request, view) -> str | None:
        if not request.user.is_authenticated:
            return None  # refused anyway by authentication
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
