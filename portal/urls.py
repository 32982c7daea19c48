from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("farm.api.urls")),
]

handler404 = "farm.api.exceptions.not_found"
handler500 = "farm.api.exceptions.server_error"
