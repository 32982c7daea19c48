"""Thin viewsets: validate the shape, call a service, answer with a read serializer.

Every queryset is filtered by the caller, so another admin's wiki, operation or request
answers 404. Lifecycle actions answer 202 with the Operation and its Location.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from farm import audit as audit_stream
from farm import services as farm_services
from farm.api import schema  # noqa: F401  (registers the schema extensions)
from farm.api import serializers as s
from farm.api.fields import EmptyBodySerializer, StrictSerializer
from farm.api.idempotency import IdempotentPostMixin
from farm.api.permissions import SeesAllWikis, require_token_scope
from farm.api.throttling import WikiCreateRateThrottle
from farm.api.tokens import token_create, token_revoke
from farm.errors import InvalidInput
from farm.filters import AuditEventFilter, OperationFilter, UnarchiveRequestFilter, WikiFilter
from farm.models import ApiToken, ApiTokenScope, AuditEvent, Family, ReservedName, Tag, Wiki
from provisioning import services as lifecycle
from provisioning.models import Operation, UnarchiveRequest

ACCEPTED = OpenApiResponse(s.OperationSerializer, description="Accepted: the Operation started.")


def accepted(request, operation: Operation) -> Response:
    """202 with the Operation, and where to poll it."""
    data = s.OperationSerializer(operation, context={"request": request}).data
    location = s.absolute_url(request, "api:operation-detail", operation.pk)
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


def attach_names(wikis: list[Wiki]) -> None:
    """Each wiki's tag and owner names, in a query each on the link tables and none joined
    with the farm (the prefetch's join reads every tagged wiki at 100,000 wikis)."""
    ids = [wiki.pk for wiki in wikis]
    tags = dict(Tag.objects.values_list("pk", "name"))
    tag_names: dict[str, list[str]] = {wiki_id: [] for wiki_id in ids}
    for wiki_id, tag_id in Wiki.tags.through.objects.filter(wiki_id__in=ids).values_list(
        "wiki_id", "tag_id"
    ):
        tag_names[wiki_id].append(tags[tag_id])
    owner_rows = list(
        Wiki.owners.through.objects.filter(wiki_id__in=ids).values_list("wiki_id", "user_id")
    )
    users = dict(
        get_user_model()
        .objects.filter(pk__in={user_id for _, user_id in owner_rows})
        .values_list("pk", "username")
    )
    owner_names: dict[str, list[str]] = {wiki_id: [] for wiki_id in ids}
    for wiki_id, user_id in owner_rows:
        owner_names[wiki_id].append(users[user_id])
    for wiki in wikis:
        # Plain attributes on the page's instances, read by WikiSerializer.
        wiki.tag_names = sorted(tag_names[wiki.pk])  # type: ignore[attr-defined]
        wiki.owner_names = sorted(owner_names[wiki.pk])  # type: ignore[attr-defined]


class ApiViewSet(IdempotentPostMixin, viewsets.GenericViewSet):
    """Base: POSTs honour Idempotency-Key; PUT is not offered (PATCH is)."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]


@extend_schema_view(
    create=extend_schema(request=s.WikiCreateSerializer, responses={202: ACCEPTED}),
    partial_update=extend_schema(
        request=s.WikiUpdateSerializer, responses={200: s.WikiDetailSerializer}
    ),
    archive=extend_schema(request=EmptyBodySerializer, responses={202: ACCEPTED}),
    close=extend_schema(request=s.CloseSerializer, responses={202: ACCEPTED}),
    reopen=extend_schema(request=EmptyBodySerializer, responses={202: ACCEPTED}),
    purge=extend_schema(request=s.PurgeSerializer, responses={202: ACCEPTED}),
)
class WikiViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    filterset_class = WikiFilter
    ops_scope_actions = ("purge",)
    service_field_aliases = {"wiki_id": "id"}

    def get_queryset(self):
        # The family by a second query, not a join: at 100,000 wikis MariaDB plans the join
        # from the family side, with a temporary table and a sort of the whole farm.
        return Wiki.objects.for_user(self.request.user).prefetch_related("family")

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None:
            attach_names(page)
        return page

    def get_serializer_class(self):
        return s.WikiSerializer if self.action == "list" else s.WikiDetailSerializer

    def get_throttles(self):
        if self.action == "create":
            return [WikiCreateRateThrottle()]
        return super().get_throttles()

    def create(self, request):
        data = s.valid_input(s.WikiCreateSerializer, request)
        operation = lifecycle.wiki_create(
            actor=request.user,
            wiki_id=data["id"],
            family=data["family"],
            sitename=data["sitename"],
            language=data["language"],
            tags=data["tags"],
        )
        return accepted(request, operation)

    def partial_update(self, request, pk=None):
        data = s.valid_input(s.WikiUpdateSerializer, request)
        wiki = farm_services.wiki_update(actor=request.user, wiki_id=pk, **data)
        # The service's instance, not a re-read through get_queryset(): an owner who just
        # handed the wiki to someone else no longer sees it there.
        return Response(self.get_serializer(wiki).data)

    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        s.valid_input(EmptyBodySerializer, request)
        return accepted(request, lifecycle.wiki_archive(actor=request.user, wiki_id=pk))

    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        data = s.valid_input(s.CloseSerializer, request)
        operation = lifecycle.wiki_close(actor=request.user, wiki_id=pk, reason=data["reason"])
        return accepted(request, operation)

    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        s.valid_input(EmptyBodySerializer, request)
        return accepted(request, lifecycle.wiki_reopen(actor=request.user, wiki_id=pk))

    @action(detail=True, methods=["post"])
    def purge(self, request, pk=None):
        data = s.valid_input(s.PurgeSerializer, request)
        operation = lifecycle.wiki_purge(actor=request.user, wiki_id=pk, confirm=data["confirm"])
        return accepted(request, operation)


@extend_schema_view(
    create=extend_schema(
        request=s.UnarchiveRequestCreateSerializer, responses={201: s.UnarchiveRequestSerializer}
    ),
    approve=extend_schema(request=s.DecisionSerializer, responses={202: ACCEPTED}),
    deny=extend_schema(request=s.DecisionSerializer, responses={200: s.UnarchiveRequestSerializer}),
)
class UnarchiveRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = s.UnarchiveRequestSerializer
    filterset_class = UnarchiveRequestFilter
    ops_scope_actions = ("approve", "deny")
    service_field_aliases = {"wiki_id": "wiki"}

    def get_queryset(self):
        return UnarchiveRequest.objects.for_user(self.request.user).select_related(
            "requested_by", "decided_by"
        )

    def create(self, request):
        data = s.valid_input(s.UnarchiveRequestCreateSerializer, request)
        unarchive = lifecycle.unarchive_request(
            actor=request.user, wiki_id=data["wiki"], reason=data["reason"]
        )
        location = s.absolute_url(request, "api:unarchiverequest-detail", unarchive.pk)
        body = self.get_serializer(self.get_queryset().get(pk=unarchive.pk)).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        unarchive = self.get_object()
        note = s.valid_input(s.DecisionSerializer, request)["note"]
        operation = lifecycle.unarchive_approve(
            actor=request.user, request_id=unarchive.pk, note=note
        )
        return accepted(request, operation)

    @action(detail=True, methods=["post"])
    def deny(self, request, pk=None):
        unarchive = self.get_object()
        note = s.valid_input(s.DecisionSerializer, request)["note"]
        lifecycle.unarchive_deny(actor=request.user, request_id=unarchive.pk, note=note)
        return Response(self.get_serializer(self.get_queryset().get(pk=unarchive.pk)).data)


@extend_schema_view(
    retry=extend_schema(request=EmptyBodySerializer, responses={202: ACCEPTED}),
    abandon=extend_schema(
        request=EmptyBodySerializer,
        responses={
            202: OpenApiResponse(s.OperationSerializer, description="The abandon operation.")
        },
    ),
)
class OperationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = s.OperationSerializer
    filterset_class = OperationFilter

    def get_queryset(self):
        return Operation.objects.for_user(self.request.user).select_related("actor")

    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        operation = self.get_object()
        s.valid_input(EmptyBodySerializer, request)
        return accepted(
            request, lifecycle.operation_retry(actor=request.user, operation_id=operation.pk)
        )

    @action(detail=True, methods=["post"])
    def abandon(self, request, pk=None):
        operation = self.get_object()
        s.valid_input(EmptyBodySerializer, request)
        abandon = lifecycle.operation_abandon(actor=request.user, operation_id=operation.pk)
        return accepted(request, abandon)


class RegistryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Families, tags and reserved names: everyone reads, ops create (through a service)."""

    lookup_field = "name"
    ops_scope_actions = ("create",)
    create_serializer_class: type[StrictSerializer]
    create_service: Callable[..., Any]

    def create(self, request):
        data = s.valid_input(self.create_serializer_class, request)
        created = self.create_service(actor=request.user, **data)
        return Response(self.get_serializer(created).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    create=extend_schema(request=s.FamilyCreateSerializer, responses={201: s.FamilySerializer})
)
class FamilyViewSet(RegistryViewSet):
    queryset = Family.objects.all()
    serializer_class = s.FamilySerializer
    create_serializer_class = s.FamilyCreateSerializer
    create_service = staticmethod(farm_services.family_create)


@extend_schema_view(
    create=extend_schema(request=s.TagCreateSerializer, responses={201: s.TagSerializer})
)
class TagViewSet(RegistryViewSet):
    queryset = Tag.objects.all()
    serializer_class = s.TagSerializer
    create_serializer_class = s.TagCreateSerializer
    create_service = staticmethod(farm_services.tag_create)


@extend_schema_view(
    create=extend_schema(
        request=s.ReservedNameCreateSerializer, responses={201: s.ReservedNameSerializer}
    )
)
class ReservedNameViewSet(RegistryViewSet):
    queryset = ReservedName.objects.all()
    serializer_class = s.ReservedNameSerializer
    create_serializer_class = s.ReservedNameCreateSerializer
    create_service = staticmethod(farm_services.reserved_name_add)


AUDIT_STREAM_MAX = 1000


def _count_parameter(request, name: str, *, default: int, lowest: int, highest: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lowest <= int(raw) <= highest:
        raise InvalidInput(
            f"query parameter {name!r} must be an integer from {lowest} to {highest}",
            field=name,
            rule=f"range:{lowest}..{highest}",
        )
    return int(raw)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """The audit log: ops and auditors read it; nobody writes it through the API."""

    queryset = AuditEvent.objects.all()
    serializer_class = s.AuditEventSerializer
    filterset_class = AuditEventFilter
    permission_classes = [*ApiViewSet.permission_classes, SeesAllWikis]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after",
                int,
                description="The `cursor` of the previous page: the stream goes on after it "
                "(0, the default, is the start).",
            ),
            OpenApiParameter(
                "limit", int, description=f"Events per page, 1 to {AUDIT_STREAM_MAX} (100)."
            ),
        ],
        responses={200: s.AuditStreamSerializer},
        operation_id="audit_events_stream",
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def stream(self, request):
        """Every event once, in stream order, for a SIEM (docs/audit.md): follow `next`,
        also when a page is empty. Unlike the list, no event is ever skipped or repeated
        while others are written (ADR 8)."""
        after = _count_parameter(request, "after", default=0, lowest=0, highest=2**63 - 1)
        limit = _count_parameter(request, "limit", default=100, lowest=1, highest=AUDIT_STREAM_MAX)
        events = audit_stream.events_after(after, limit)
        cursor = events[-1].sequence if events else after
        next_url = request.build_absolute_uri(
            f"{reverse('api:auditevent-stream')}?after={cursor}&limit={limit}"
        )
        return Response(
            {
                "results": s.AuditEventSerializer(events, many=True).data,
                "cursor": cursor,
                "next": next_url,
            }
        )


@extend_schema_view(
    create=extend_schema(
        request=s.ApiTokenCreateSerializer, responses={201: s.ApiTokenCreatedSerializer}
    ),
    destroy=extend_schema(
        responses={204: None}, description="Revoke the token (kept as a record)."
    ),
)
class ApiTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ApiViewSet
):
    """Your tokens (ops: everyone's). The secret is in the creation response only."""

    serializer_class = s.ApiTokenSerializer
    idempotency_redact = ("token",)

    def get_queryset(self):
        return ApiToken.objects.for_user(self.request.user).select_related("owner")

    def create(self, request):
        data = s.valid_input(s.ApiTokenCreateSerializer, request)
        via_token = request.auth if isinstance(request.auth, ApiToken) else None
        token, raw = token_create(actor=request.user, via_token=via_token, **data)
        context = {**self.get_serializer_context(), "raw_token": raw}
        body = s.ApiTokenCreatedSerializer(token, context=context).data
        location = s.absolute_url(request, "api:apitoken-detail", token.pk)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    def perform_destroy(self, instance: ApiToken) -> None:
        if instance.owner_id != self.request.user.pk:
            require_token_scope(self.request, ApiTokenScope.OPS)
        token_revoke(actor=self.request.user, token=instance)
