"""The configuration API (DESIGN sections 6 and 7): effective config with provenance,
per-setting writes at a layer, history, diff, rollback and the catalog. Thin views: the
services in farm.config decide who may do what. The routes are in farm/api/urls.py.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from farm import config
from farm.api.idempotency import IdempotentPostMixin
from farm.api.permissions import require_token_scope
from farm.api.serializers import (
    ConfigVersionSerializer,
    RollbackSerializer,
    SettingCreateSerializer,
    SettingDefinitionSerializer,
    SettingValueSerializer,
    valid_input,
)
from farm.errors import InvalidInput
from farm.models import ApiTokenScope, ConfigLayer, ConfigVersion, SettingDefinition


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
