from django.contrib import admin
from django.urls import include, path

from farm.metrics import metrics_view
from portal import health

urlpatterns = [
    # Probes (portal/health.py): exempt from the SSL redirect, no login.
    path("healthz", health.liveness, name="healthz"),
    path("readyz", health.readiness, name="readyz"),
    # Prometheus (farm/metrics.py): a bearer token in production.
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("farm.api.urls")),
    path("", include("farm.ui_urls")),
]

# JSON for /api/ paths, the UI's HTML pages (templates/404.html, 500.html) for the rest.
handler404 = "farm.api.exceptions.not_found"
handler500 = "farm.api.exceptions.server_error"
