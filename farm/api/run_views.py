"""Farm-wide runs (backup, migrate, inventory): start, preview, follow, halt, resume, cancel,
retry the failed wikis, and the report as JSON or CSV. And a wiki's backups, its restore in
place and its clone as a new wiki, routed under wikis/{id}/.

Runs are farm-wide, so only ops and auditors see them; only ops change them (the services
say so, and an API token needs the ops scope). Rules live in provisioning.runs and
provisioning.restores; these views check shapes and answer.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from farm.api import run_serializers as rs
from farm.api.fields import EmptyBodySerializer
from farm.api.permissions import SeesAllWikis
from farm.api.serializers import absolute_url, valid_input
from farm.api.views import ACCEPTED, ApiViewSet, accepted
from farm.filters import RunFilter, RunItemFilter
from farm.models import Wiki
from farm.roles import sees_all_wikis
from provisioning import restores, runs
from provisioning.models import Run, RunItem, RunKind

RUN_CREATED = OpenApiResponse(
    rs.RunDetailSerializer, description="Created: the run, queued; its URL is in Location."
)
RUN_CHANGED = OpenApiResponse(rs.RunDetailSerializer, description="The run in its new state.")


def run_created(request, run: Run) -> Response:
    """201 with the run and where to follow it."""
    body = rs.RunDetailSerializer(run, context={"request": request}).data
    location = absolute_url(request, "api:run-detail", run.pk)
    return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class CsvRenderer(BaseRenderer):
    """A report as text/csv (`?format=csv` or `Accept: text/csv`); the view gives the text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data.encode(self.charset) if isinstance(data, str) else b""


# Where a service names its argument, the API names its field.
RUN_FIELD_ALIASES = {
    "run_id": "id",
    "wiki_id": "selection.wiki_ids",
    "command": "params.command",
    "sql_file": "params.sql_file",
}


@extend_schema_view(
    create=extend_schema(request=rs.RunCreateSerializer, responses={201: RUN_CREATED}),
    preview=extend_schema(
        request=rs.RunPreviewRequestSerializer,
        responses={200: rs.RunPreviewSerializer},
        description="What a run would cover: wikis per size class, how many run at once.",
    ),
    items=extend_schema(
        responses={200: rs.RunItemSerializer(many=True)},
        description="The run's per-wiki log.",
    ),
    halt=extend_schema(request=EmptyBodySerializer, responses={200: RUN_CHANGED}),
    resume=extend_schema(request=EmptyBodySerializer, responses={200: RUN_CHANGED}),
    cancel=extend_schema(
        request=EmptyBodySerializer,
        responses={200: RUN_CHANGED},
        description="Queued wikis are cancelled; running ones finish.",
    ),
    retry_failed=extend_schema(
        request=EmptyBodySerializer,
        responses={200: RUN_CHANGED},
        description="Queue the failed wikis again, each with a new operation.",
    ),
    report=extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=["json", "csv"],
                description="csv: one line per wiki (also with Accept: text/csv).",
            )
        ],
        responses={
            (200, "application/json"): rs.RunReportSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    ),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    filterset_class = RunFilter
    permission_classes = [*ApiViewSet.permission_classes, SeesAllWikis]
    ops_scope_actions = ("create", "halt", "resume", "cancel", "retry_failed")
    service_field_aliases = RUN_FIELD_ALIASES

    def get_queryset(self):
        # The items action lists a run's items (filtered by RunItemFilter).
        model = RunItem if self.action == "items" else Run
        if not sees_all_wikis(self.request.user):
            return model.objects.none()
        if model is RunItem:
            return RunItem.objects.order_by("wiki_ref")
        return Run.objects.select_related("created_by")

    def get_serializer_class(self):
        return rs.RunSerializer if self.action == "list" else rs.RunDetailSerializer

    def create(self, request):
        data = valid_input(rs.RunCreateSerializer, request)
        return run_created(request, runs.run_create(actor=request.user, **data))

    @action(detail=False, methods=["post"])
    def preview(self, request):
        data = valid_input(rs.RunPreviewRequestSerializer, request)
        return Response(runs.preview(actor=request.user, **data))

    @action(
        detail=True,
        methods=["get"],
        filterset_class=RunItemFilter,
        serializer_class=rs.RunItemSerializer,
    )
    def items(self, request, pk=None):
        run = runs.visible_run(request.user, pk)
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset().filter(run=run)))
        return self.get_paginated_response(rs.RunItemSerializer(page, many=True).data)

    @action(detail=True, methods=["post"])
    def halt(self, request, pk=None):
        valid_input(EmptyBodySerializer, request)
        return self._changed(runs.run_halt(actor=request.user, run_id=pk))

    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        valid_input(EmptyBodySerializer, request)
        return self._changed(runs.run_resume(actor=request.user, run_id=pk))

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        valid_input(EmptyBodySerializer, request)
        return self._changed(runs.run_cancel(actor=request.user, run_id=pk))

    @action(detail=True, methods=["post"], url_path="retry-failed")
    def retry_failed(self, request, pk=None):
        valid_input(EmptyBodySerializer, request)
        return self._changed(runs.run_retry_failed(actor=request.user, run_id=pk))

    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CsvRenderer])
    def report(self, request, pk=None):
        run = runs.visible_run(request.user, pk)
        if request.accepted_renderer.format == CsvRenderer.format:
            disposition = f'attachment; filename="run-{run.pk}.csv"'
            return Response(runs.report_csv(run), headers={"Content-Disposition": disposition})
        return Response(runs.report(run))

    def finalize_response(self, request, response, *args, **kwargs):
        # An error is answered in the one JSON error shape, whatever format was asked for.
        if isinstance(response, Response) and response.exception:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def _changed(self, run: Run) -> Response:
        return Response(self.get_serializer(run).data)


@extend_schema_view(
    create=extend_schema(
        request=rs.InventoryCreateSerializer,
        responses={201: RUN_CREATED},
        description="Start an inventory run: usage and size class of the selected wikis.",
    )
)
class InventoryViewSet(ApiViewSet):
    permission_classes = [*ApiViewSet.permission_classes, SeesAllWikis]
    ops_scope_actions = ("create",)
    service_field_aliases = RUN_FIELD_ALIASES

    def create(self, request):
        data = valid_input(rs.InventoryCreateSerializer, request)
        selection = {"all": True} if data["selection"] is None else data["selection"]
        run = runs.run_create(actor=request.user, kind=RunKind.INVENTORY, selection=selection)
        return run_created(request, run)


@extend_schema_view(
    backups=extend_schema(
        responses={200: rs.RestoreSourceSerializer(many=True)},
        description="What the wiki can be restored from, newest first: backups and archive.",
    ),
    restore=extend_schema(
        request=rs.WikiRestoreSerializer,
        responses={202: ACCEPTED},
        description="Restore in place (ops): the current state is backed up first.",
    ),
    clone=extend_schema(
        request=rs.WikiCloneSerializer,
        responses={202: ACCEPTED},
        description="Restore a backup or the archive as a new wiki.",
    ),
)
class WikiRestoreViewSet(ApiViewSet):
    """Routed on the wikis/ prefix next to WikiViewSet: these are actions on a wiki."""

    ops_scope_actions = ("restore",)

    def get_queryset(self):
        return Wiki.objects.for_user(self.request.user)

    @property
    def service_field_aliases(self) -> dict[str, str]:
        # A clone's wiki_id errors are about the new id: the source was found already.
        return {"wiki_id": "new_id" if self.action == "clone" else "id", "source_id": "from"}

    @action(detail=True, methods=["get"], pagination_class=None)
    def backups(self, request, pk=None):
        sources = restores.restore_sources(self.get_object())
        return Response(rs.RestoreSourceSerializer(sources, many=True).data)

    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        data = valid_input(rs.WikiRestoreSerializer, request)
        operation = restores.wiki_restore(
            actor=request.user, wiki_id=pk, source_id=data["from"], confirm=data["confirm"]
        )
        return accepted(request, operation)

    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        source = self.get_object()
        data = valid_input(rs.WikiCloneSerializer, request)
        operation = restores.wiki_clone(
            actor=request.user,
            wiki_id=source.pk,
            source_id=data["from"],
            new_id=data["new_id"],
            sitename=data["sitename"],
        )
        return accepted(request, operation)
