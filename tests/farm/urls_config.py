"""The configuration API on its own, for tests/farm/test_exports.py and test_config_api."""

from django.urls import include, path

from farm.api.config_views import config_urlpatterns

urlpatterns = [path("api/v1/", include(config_urlpatterns))]
