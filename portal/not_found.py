"""The portal's own 404 page under DEBUG too (`bin/dev run`).

With DEBUG on, Django answers a 404 with its technical page, which lists every URL pattern
and tells the visitor which one matched: for another admin's wiki it says that the wiki id
is a real route. The portal shows the page it shows in production (templates/404.html, or
the API's JSON error) whatever DEBUG says. Without DEBUG this middleware does nothing:
Django already calls handler404.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from farm.api.exceptions import not_found


class PortalNotFoundMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # No view ran: the URL matched no route, and DEBUG made that a technical page.
        if (
            settings.DEBUG
            and response.status_code == 404
            and getattr(request, "resolver_match", None) is None
        ):
            return not_found(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A view raised Http404 (get_object_or_404 on a wiki the caller may not see)."""
        if settings.DEBUG and isinstance(exception, Http404):
            return not_found(request, exception)
        return None
