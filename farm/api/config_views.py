"""The configuration API (DESIGN sections 6 and 7): effective config with provenance,
per-setting writes at a layer, history, diff, rollback, the catalog, and the exports with
ETag and 304. Thin views: the services in farm.config decide who may do what.

Include `config_urlpatterns` under /api/v1/.
"""

from __future__ import annotations

import os

from django.http import FileResponse, HttpResponse
from django.urls import path, re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from farm import config, exports
from farm.api.fields import StrictCharField, StrictIntegerField, StrictSerializer
from farm.api.idempotency import IdempotentPostMixin
from farm.api.permissions import SeesAllWikis, TokenScope, require_token_scope
from farm.errors import InvalidInput, NotFound
from farm.models import ApiTokenScope, ConfigLayer, ConfigVersion, SettingDefinition

# --- serializers -------------------------------------------------------------------------


class ConfigVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConfigVersion
        fields = [
            "version",
            "created_at",
            "actor_name",
            "layer",
            "target",
            "setting",
            "before",
            "after",
            "rollback_to",
        ]


class SettingDefinitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = SettingDefinition
        fields = [
            "name",
            "type",
            "schema",
            "default",
            "merge_strategy",
            "editable_by",
            "description",
        ]


class SettingCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    type = StrictCharField(max_length=8)
    schema = serializers.JSONField()
    default = serializers.JSONField(required=False, allow_null=True, default=None)
    merge_strategy = StrictCharField(required=False, default="replace")
    editable_by = StrictCharField(required=False, default="ops")
    description = StrictCharField(required=False, default="", allow_blank=True, max_length=500)


class SettingValueSerializer(StrictSerializer):
    # Null is accepted here so the service answers with its own rule (`not_null`).
    value = serializers.JSONField(allow_null=True)


class RollbackSerializer(StrictSerializer):
    version = StrictIntegerField(min_value=0)


def valid_input(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _require_ops_scope_outside_wikis(request, layer: str) -> None:
    """Farm-wide blocks are an ops matter: a token needs the ops scope to change them."""
    if layer != ConfigLayer.WIKI:
        require_token_scope(request, ApiTokenScope.OPS)


# --- documented answers --------------------------------------------------------------------
# The error statuses (400, 401, 403, 404, ...) are added to every operation, in the one error
# shape, by farm.api.schema.add_errors_and_strict_bodies; these are the successful answers.

EFFECTIVE = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="The wiki's inheritance chain and every setting's effective value with the "
    "layer that gave it.",
)
BLOCK = OpenApiResponse(
    OpenApiTypes.OBJECT, description="The block's layer, target, latest version and values."
)
CHANGE = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="The change and its new version; `changed` is false (and `version` null) "
    "when the block already held that value.",
)
DIFF = OpenApiResponse(
    OpenApiTypes.OBJECT, description="What changed between the two versions: {setting: {from, to}}."
)
ROLLED_BACK = OpenApiResponse(
    OpenApiTypes.OBJECT, description="The versions the rollback wrote and the block as it is now."
)


# --- configuration -----------------------------------------------------------------------


class EffectiveConfigView(APIView):
    @extend_schema(responses={200: EFFECTIVE})
    def get(self, request, wiki_id: str):
        return Response(config.wiki_effective_config(actor=request.user, wiki_id=wiki_id))


class ConfigBlockView(APIView):
    @extend_schema(responses={200: BLOCK})
    def get(self, request, layer: str, target: str = ""):
        return Response(config.config_block(actor=request.user, layer=layer, target=target))


def _change_body(version: ConfigVersion | None, **block) -> dict:
    return {
        **block,
        "changed": version is not None,
        "version": ConfigVersionSerializer(version).data if version is not None else None,
    }


class ConfigSettingView(APIView):
    @extend_schema(request=SettingValueSerializer, responses={200: CHANGE})
    def put(self, request, layer: str, setting: str, target: str = ""):
        _require_ops_scope_outside_wikis(request, layer)
        value = valid_input(SettingValueSerializer, request)["value"]
        version = config.config_set(
            actor=request.user, layer=layer, target=target, setting=setting, value=value
        )
        return Response(_change_body(version, layer=layer, target=target, setting=setting))

    # 200 with the change, not 204: the caller learns the version the removal made.
    @extend_schema(responses={200: CHANGE})
    def delete(self, request, layer: str, setting: str, target: str = ""):
        _require_ops_scope_outside_wikis(request, layer)
        version = config.config_unset(
            actor=request.user, layer=layer, target=target, setting=setting
        )
        return Response(_change_body(version, layer=layer, target=target, setting=setting))


def _version_parameter(request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or not raw.isdigit():
        raise InvalidInput(
            f"query parameter {name!r} must be a version number", field=name, rule="type:integer"
        )
    return int(raw)


class ConfigDiffView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", int, required=True),
            OpenApiParameter("to", int, required=True),
        ],
        responses={200: DIFF},
    )
    def get(self, request, layer: str, target: str = ""):
        return Response(
            config.config_diff(
                actor=request.user,
                layer=layer,
                target=target,
                from_version=_version_parameter(request, "from"),
                to_version=_version_parameter(request, "to"),
            )
        )


class ConfigRollbackView(IdempotentPostMixin, APIView):
    """Bring a block back to its values as of a version; the rollback is new versions."""

    @extend_schema(request=RollbackSerializer, responses={200: ROLLED_BACK})
    def post(self, request, layer: str, target: str = ""):
        _require_ops_scope_outside_wikis(request, layer)
        version = valid_input(RollbackSerializer, request)["version"]
        versions = config.config_rollback(
            actor=request.user, layer=layer, target=target, version=version
        )
        return Response(
            {
                "rolled_back_to": version,
                "versions": ConfigVersionSerializer(versions, many=True).data,
                "block": config.config_block(actor=request.user, layer=layer, target=target),
            }
        )


@extend_schema(
    parameters=[
        OpenApiParameter("layer", str),
        OpenApiParameter("target", str),
        OpenApiParameter("setting", str),
    ]
)
class ConfigHistoryView(generics.ListAPIView):
    serializer_class = ConfigVersionSerializer

    def get_queryset(self):
        params = self.request.query_params
        return config.history_for(
            self.request.user,
            layer=params.get("layer"),
            target=params.get("target"),
            setting=params.get("setting"),
        )


class CatalogView(IdempotentPostMixin, generics.ListAPIView):
    """The settings catalog: everyone reads it, ops add settings."""

    serializer_class = SettingDefinitionSerializer
    queryset = SettingDefinition.objects.order_by("name")

    @extend_schema(request=SettingCreateSerializer, responses={201: SettingDefinitionSerializer})
    def post(self, request):
        require_token_scope(request, ApiTokenScope.OPS)
        definition = config.setting_create(
            actor=request.user, **valid_input(SettingCreateSerializer, request)
        )
        return Response(SettingDefinitionSerializer(definition).data, status=201)


class CatalogDetailView(generics.RetrieveAPIView):
    serializer_class = SettingDefinitionSerializer
    queryset = SettingDefinition.objects.all()
    lookup_field = "name"


# --- exports -----------------------------------------------------------------------------


def file_response(request, relative: str, content_type: str) -> HttpResponse | FileResponse:
    """A written export file with the ETag its write recorded, or 304 when the caller holds
    it already: a stat and a compare, whatever the size of the farm."""
    path = exports.export_dir() / relative
    if relative in FARM_WIDE_FILES and not path.exists():
        exports.write_farm_files()  # a new farm, before its first publish
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NotFound(f"there is no export {relative}", field="path") from None
    etag = exports.file_etag(stat)
    if exports.etag_matches(request.headers.get("If-None-Match"), etag):
        response: HttpResponse | FileResponse = HttpResponse(status=304)
    else:
        sent = open(path, "rb")  # noqa: SIM115  (FileResponse closes it)
        response = FileResponse(sent, content_type=content_type)
        # The file may have been replaced since the stat: name what is being sent.
        etag = exports.file_etag(os.fstat(sent.fileno()))
    response["ETag"] = etag
    # Pollers revalidate every time: cheap, thanks to 304.
    response["Cache-Control"] = "no-cache"
    return response


FARM_WIDE_FILES = (exports.FARM_FILE, exports.SITECONFIG_FILE, exports.HOSTS_FILE)


class ExportView(APIView):
    """Exports list every wiki, so only ops and auditors (and their tokens) read them."""

    permission_classes = [IsAuthenticated, TokenScope, SeesAllWikis]


# What a poller sends and gets back; the answers an export can give besides the errors.
CONDITIONAL_HEADERS = [
    OpenApiParameter(
        "If-None-Match",
        str,
        OpenApiParameter.HEADER,
        description="The ETag of the copy you hold: answered with 304 while it is current.",
    ),
    OpenApiParameter(
        "ETag",
        str,
        OpenApiParameter.HEADER,
        response=[200, 304],
        description="Changes exactly when the export's bytes change.",
    ),
]
NOT_MODIFIED = OpenApiResponse(description="Not modified: your copy is current. No body.")


def export_schema(operation_id: str, media_type: str, body, description: str):
    return extend_schema(
        operation_id=operation_id,
        parameters=CONDITIONAL_HEADERS,
        responses={
            (200, media_type): OpenApiResponse(body, description=description),
            304: NOT_MODIFIED,
        },
    )


class FarmExportView(ExportView):
    @export_schema(
        "exports_farm",
        "application/json",
        OpenApiTypes.OBJECT,
        "Every wiki with its state, database, URL, read-only flag and effective settings.",
    )
    def get(self, request):
        return file_response(request, exports.FARM_FILE, "application/json")


class SiteConfigExportView(ExportView):
    @export_schema(
        "exports_siteconfig",
        "application/json",
        OpenApiTypes.OBJECT,
        "SiteConfiguration-shaped: settings -> {default, family, tag, wiki}.",
    )
    def get(self, request):
        return file_response(request, exports.SITECONFIG_FILE, "application/json")


class HostsExportView(ExportView):
    @export_schema(
        "exports_hosts",
        "application/json",
        OpenApiTypes.OBJECT,
        "Host -> wiki id, for the hosts that name one wiki (host routing).",
    )
    def get(self, request):
        return file_response(request, exports.HOSTS_FILE, "application/json")


class WikiExportView(ExportView):
    @export_schema(
        "exports_wiki",
        "application/json",
        OpenApiTypes.OBJECT,
        "What MediaWiki reads for one wiki: state, database, URL, read-only flag and "
        "reason, storage location and effective settings; a purged wiki's says so.",
    )
    def get(self, request, wiki_id: str):
        try:
            return file_response(request, f"{exports.WIKI_DIR}/{wiki_id}.json", "application/json")
        except NotFound:
            raise NotFound(
                f"wiki {wiki_id!r} has no export (unknown, or not yet active)", field="wiki_id"
            ) from None


class DblistIndexView(ExportView):
    @extend_schema(
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Each dblist's name and its number of wikis."
            )
        }
    )
    def get(self, request):
        folder = exports.export_dir() / exports.DBLIST_DIR
        if not folder.is_dir():
            exports.write_farm_files()  # a new farm, before its first publish
        counts = {
            path.stem: path.read_bytes().count(b"\n") for path in sorted(folder.glob("*.dblist"))
        }
        return Response(counts)


class DblistView(ExportView):
    @export_schema(
        "exports_dblist", "text/plain", OpenApiTypes.STR, "The list's wiki ids, one a line."
    )
    def get(self, request, name: str):
        relative = f"{exports.DBLIST_DIR}/{name}.dblist"
        try:
            return file_response(request, relative, "text/plain; charset=utf-8")
        except NotFound:
            raise NotFound(f"dblist {name!r} not found", field="name") from None


# --- routes ------------------------------------------------------------------------------

# The non-capturing group keeps the documented pattern ^(?:family|tag|wiki)$ anchored.
_LAYER = r"(?P<layer>(?:family|tag|wiki))/(?P<target>[a-z][a-z0-9-]{0,63})"
_SETTING = r"(?P<setting>[A-Za-z0-9_]{1,64})"
_DEFAULT = {"layer": ConfigLayer.DEFAULT, "target": ""}

config_urlpatterns = [
    path("config/catalog/", CatalogView.as_view(), name="config-catalog"),
    path("config/catalog/<str:name>/", CatalogDetailView.as_view(), name="config-setting"),
    path("config/history/", ConfigHistoryView.as_view(), name="config-history"),
    path("config/effective/<str:wiki_id>/", EffectiveConfigView.as_view(), name="config-effective"),
    path("config/blocks/default/", ConfigBlockView.as_view(), _DEFAULT, name="config-default"),
    re_path(
        rf"^config/blocks/default/settings/{_SETTING}/$",
        ConfigSettingView.as_view(),
        _DEFAULT,
        name="config-default-setting",
    ),
    path(
        "config/blocks/default/diff/",
        ConfigDiffView.as_view(),
        _DEFAULT,
        name="config-default-diff",
    ),
    path(
        "config/blocks/default/rollback/",
        ConfigRollbackView.as_view(),
        _DEFAULT,
        name="config-default-rollback",
    ),
    re_path(rf"^config/blocks/{_LAYER}/$", ConfigBlockView.as_view(), name="config-block"),
    re_path(
        rf"^config/blocks/{_LAYER}/settings/{_SETTING}/$",
        ConfigSettingView.as_view(),
        name="config-block-setting",
    ),
    re_path(rf"^config/blocks/{_LAYER}/diff/$", ConfigDiffView.as_view(), name="config-block-diff"),
    re_path(
        rf"^config/blocks/{_LAYER}/rollback/$",
        ConfigRollbackView.as_view(),
        name="config-block-rollback",
    ),
    path("exports/farm.json", FarmExportView.as_view(), name="export-farm"),
    path("exports/siteconfig.json", SiteConfigExportView.as_view(), name="export-siteconfig"),
    path("exports/hosts.json", HostsExportView.as_view(), name="export-hosts"),
    re_path(
        r"^exports/wikis/(?P<wiki_id>[a-z][a-z0-9]{0,31})\.json$",
        WikiExportView.as_view(),
        name="export-wiki",
    ),
    path("exports/dblists/", DblistIndexView.as_view(), name="export-dblists"),
    re_path(
        r"^exports/dblists/(?P<name>[a-z][a-z0-9-]{0,80})\.dblist$",
        DblistView.as_view(),
        name="export-dblist",
    ),
]
