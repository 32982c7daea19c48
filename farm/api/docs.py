"""The API docs pages, for a farm with no internet: Swagger UI and ReDoc come from
drf-spectacular-sidecar's static files (SWAGGER_UI_DIST and REDOC_DIST = "SIDECAR"), ReDoc's
page has no web fonts, and a Content-Security-Policy keeps the browser from even trying
what they would still fetch from outside (ReDoc's footer loads Redocly's logo from a CDN:
a firewall that drops packets would leave it hanging)."""

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

# Images, fetches and fonts from the portal only; scripts and styles are not restricted
# here (both pages start their viewer with an inline script).
OFFLINE_POLICY = "img-src 'self' data:; connect-src 'self'; font-src 'self' data:"


class _Offline:
    @extend_schema(exclude=True)  # a page, not an API operation
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = OFFLINE_POLICY
        return response


class RedocView(_Offline, SpectacularRedocView):
    template_name = "api/redoc.html"


class SwaggerView(_Offline, SpectacularSwaggerView):
    pass
