from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from farm.api import config_views, docs, export_views, run_views, views
from farm.models import ConfigLayer

app_name = "api"

# The non-capturing group keeps the documented pattern ^(?:family|tag|wiki)$ anchored.
_LAYER = r"(?P<layer>(?:family|tag|wiki))/(?P<target>[a-z][a-z0-9-]{0,63})"
_SETTING = r"(?P<setting>[A-Za-z0-9_]{1,64})"
_DEFAULT = {"layer": ConfigLayer.DEFAULT, "target": ""}

# Configuration and exports: not viewsets, so routed by hand.
config_urlpatterns = [
    path("config/catalog/", config_views.CatalogView.as_view(), name="config-catalog"),
    path(
        "config/catalog/<str:name>/",
        config_views.CatalogDetailView.as_view(),
        name="config-setting",
    ),
    path("config/history/", config_views.ConfigHistoryView.as_view(), name="config-history"),
    path(
        "config/effective/<str:wiki_id>/",
        config_views.EffectiveConfigView.as_view(),
        name="config-effective",
    ),
    path(
        "config/blocks/default/",
        config_views.ConfigBlockView.as_view(),
        _DEFAULT,
        name="config-default",
    ),
    re_path(
        rf"^config/blocks/default/settings/{_SETTING}/$",
        config_views.ConfigSettingView.as_view(),
        _DEFAULT,
        name="config-default-setting",
    ),
    path(
        "config/blocks/default/diff/",
        config_views.ConfigDiffView.as_view(),
        _DEFAULT,
        name="config-default-diff",
    ),
    path(
        "config/blocks/default/rollback/",
        config_views.ConfigRollbackView.as_view(),
        _DEFAULT,
        name="config-default-rollback",
    ),
    re_path(
        rf"^config/blocks/{_LAYER}/$", config_views.ConfigBlockView.as_view(), name="config-block"
    ),
    re_path(
        rf"^config/blocks/{_LAYER}/settings/{_SETTING}/$",
        config_views.ConfigSettingView.as_view(),
        name="config-block-setting",
    ),
    re_path(
        rf"^config/blocks/{_LAYER}/diff/$",
        config_views.ConfigDiffView.as_view(),
        name="config-block-diff",
    ),
    re_path(
        rf"^config/blocks/{_LAYER}/rollback/$",
        config_views.ConfigRollbackView.as_view(),
        name="config-block-rollback",
    ),
    path("exports/farm.json", export_views.FarmExportView.as_view(), name="export-farm"),
    path(
        "exports/siteconfig.json",
        export_views.SiteConfigExportView.as_view(),
        name="export-siteconfig",
    ),
    path("exports/hosts.json", export_views.HostsExportView.as_view(), name="export-hosts"),
    re_path(
        r"^exports/wikis/(?P<wiki_id>[a-z][a-z0-9]{0,31})\.json$",
        export_views.WikiExportView.as_view(),
        name="export-wiki",
    ),
    path("exports/dblists/", export_views.DblistIndexView.as_view(), name="export-dblists"),
    re_path(
        r"^exports/dblists/(?P<name>[a-z][a-z0-9-]{0,80})\.dblist$",
        export_views.DblistView.as_view(),
        name="export-dblist",
    ),
]


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
# Farm-wide runs, and a wiki's backups, restore and clone (actions under wikis/{id}/).
router.register("runs", run_views.RunViewSet, basename="run")
router.register("inventory", run_views.InventoryViewSet, basename="inventory")
router.register("wikis", run_views.WikiRestoreViewSet, basename="wikirestore")

urlpatterns = [
    path("", include(router.urls)),
    *config_urlpatterns,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # ReDoc and Swagger UI from the portal's own static files: they work with no internet.
    path("docs/", docs.RedocView.as_view(url_name="api:schema"), name="docs"),
    path("docs/swagger/", docs.SwaggerView.as_view(url_name="api:schema"), name="swagger"),
]
