from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("farm.api.urls")),
    path("", include("farm.ui_urls")),
]

# JSON for /api/ paths, the UI's HTML pages (templates/404.html, 500.html) for the rest.
handler404 = "farm.api.exceptions.not_found"
handler500 = "farm.api.exceptions.server_error"
