"""URLs of the web UI (mounted at the site root by portal/urls.py)."""

from django.templatetags.static import static
from django.urls import path, re_path
from django.views.generic import RedirectView
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from farm import run_views, views

urlpatterns = [
    path("", views.home, name="home"),
    # Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says.
    path("favicon.ico", RedirectView.as_view(url=static("farm/favicon.svg"), permanent=True)),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", views.logout, name="logout"),
    # mozilla-django-oidc's two endpoints, under the names it reverses.
    path(
        "oidc/authenticate/",
        views.oidc_only(OIDCAuthenticationRequestView.as_view()),
        name="oidc_authentication_init",
    ),
    path(
        "oidc/callback/",
        views.oidc_only(OIDCAuthenticationCallbackView.as_view()),
        name="oidc_authentication_callback",
    ),
    path("wikis/", views.wiki_list, name="wiki-list"),
    path("wikis/new/", views.wiki_create, name="wiki-create"),
    path("ui/check-id", views.check_wiki_id_json, name="check-wiki-id"),
    path("wikis/<str:wiki_id>/", views.wiki_detail, name="wiki-detail"),
    path("wikis/<str:wiki_id>/edit/", views.wiki_edit, name="wiki-edit"),
    path("wikis/<str:wiki_id>/close/", views.wiki_close, name="wiki-close"),
    path("wikis/<str:wiki_id>/reopen/", views.wiki_reopen, name="wiki-reopen"),
    path("wikis/<str:wiki_id>/archive/", views.wiki_archive, name="wiki-archive"),
    path("wikis/<str:wiki_id>/unarchive/", views.unarchive_request, name="wiki-unarchive"),
    path("wikis/<str:wiki_id>/restore/", views.wiki_restore, name="wiki-restore"),
    path("wikis/<str:wiki_id>/clone/", views.wiki_clone, name="wiki-clone"),
    path("wikis/<str:wiki_id>/config/", views.wiki_config, name="wiki-config"),
    path(
        "wikis/<str:wiki_id>/config/<str:setting>/",
        views.wiki_config_setting,
        name="wiki-config-setting",
    ),
    re_path(
        r"^operations/(?P<operation_id>[0-9a-f-]{36})/(?P<action>retry|abandon)/$",
        views.operation_action,
        name="operation-action",
    ),
    path("ops/wikis/", views.all_wikis, name="all-wikis"),
    path("ops/wikis/<str:wiki_id>/purge/", views.wiki_purge, name="wiki-purge"),
    path("ops/unarchive-requests/", views.unarchive_queue, name="unarchive-queue"),
    re_path(
        r"^ops/unarchive-requests/(?P<request_id>[0-9]+)/(?P<decision>approve|deny)/$",
        views.unarchive_decide,
        name="unarchive-decide",
    ),
    path("ops/audit/", views.audit_log, name="audit-log"),
    # Farm-wide runs (farm/run_views.py): ops and auditors; a 404 for anyone else.
    path("runs/", run_views.run_list, name="run-list"),
    path("runs/new/", run_views.run_start, name="run-start"),
    path("runs/<str:run_id>/", run_views.run_detail, name="run-detail"),
    path("runs/<str:run_id>/progress.json", run_views.run_progress_json, name="run-progress"),
    re_path(
        r"^runs/(?P<run_id>[^/]+)/report\.(?P<extension>json|csv)$",
        run_views.run_report,
        name="run-report",
    ),
    re_path(
        r"^runs/(?P<run_id>[^/]+)/(?P<action>halt|resume|cancel|retry-failed)/$",
        run_views.run_control,
        name="run-control",
    ),
]
