from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework.routers import DefaultRouter

from farm.api import views
from farm.api.config_views import config_urlpatterns

app_name = "api"

router = DefaultRouter()
router.include_root_view = False
router.register("wikis", views.WikiViewSet, basename="wiki")
router.register("unarchive-requests", views.UnarchiveRequestViewSet, basename="unarchiverequest")
router.register("operations", views.OperationViewSet, basename="operation")
router.register("families", views.FamilyViewSet, basename="family")
router.register("tags", views.TagViewSet, basename="tag")
router.register("reserved-names", views.ReservedNameViewSet, basename="reservedname")
router.register("audit-events", views.AuditEventViewSet, basename="auditevent")
router.register("tokens", views.ApiTokenViewSet, basename="apitoken")

urlpatterns = [
    path("", include(router.urls)),
    *config_urlpatterns,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularRedocView.as_view(url_name="api:schema"), name="docs"),
]
