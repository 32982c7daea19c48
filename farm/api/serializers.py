"""Read serializers say what the API shows; write serializers (Strict*) what it accepts.

Write serializers only check shapes and types; the services check the rules (id syntax,
reserved names, quota, states) so the API, the UI and the CLI agree on them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from farm.api.fields import StrictCharField, StrictIntegerField, StrictSerializer, string_list
from farm.models import (
    ApiToken,
    ApiTokenScope,
    AuditEvent,
    ConfigVersion,
    Family,
    ReservedName,
    SettingDefinition,
    Tag,
    Wiki,
)
from provisioning.models import Operation, StepStatus, UnarchiveRequest, WikiUsage

# --- operations --------------------------------------------------------------------------


class OperationStepSerializer(serializers.Serializer):
    """One step as the engine records it; a step not started yet has no times."""

    name = serializers.CharField()
    status = serializers.ChoiceField(choices=StepStatus.choices)
    started_at = serializers.DateTimeField(default=None, allow_null=True)
    finished_at = serializers.DateTimeField(default=None, allow_null=True)
    starts = serializers.IntegerField(default=0)
    error = serializers.CharField(default="", allow_blank=True)
    result = serializers.JSONField(default=None, allow_null=True)


class OperationSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:operation-detail")
    wiki = serializers.CharField(source="wiki_ref", read_only=True)
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True)
    steps = OperationStepSerializer(many=True, read_only=True)
    progress = serializers.FloatField(read_only=True, help_text="Done steps / all steps.")
    current_step = serializers.CharField(read_only=True)
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Operation
        fields = [
            "id",
            "url",
            "wiki",
            "kind",
            "state",
            "progress",
            "current_step",
            "steps",
            "params",
            "error",
            "failed_step",
            "actor",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_seconds(self, operation: Operation) -> float | None:
        if operation.started_at is None or operation.finished_at is None:
            return None
        return (operation.finished_at - operation.started_at).total_seconds()


# --- wikis -------------------------------------------------------------------------------


class WikiSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:wiki-detail")
    family: serializers.SlugRelatedField[Family] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    tags = serializers.SerializerMethodField()
    owners = serializers.SerializerMethodField()

    # A list page attaches the names (WikiViewSet.paginate_queryset: one query each, no
    # join); a single wiki reads them itself.
    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, wiki: Wiki) -> list[str]:
        names = getattr(wiki, "tag_names", None)
        return names if names is not None else sorted(wiki.tags.values_list("name", flat=True))

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_owners(self, wiki: Wiki) -> list[str]:
        names = getattr(wiki, "owner_names", None)
        if names is not None:
            return names
        return sorted(wiki.owners.values_list("username", flat=True))

    class Meta:
        model = Wiki
        fields = [
            "id",
            "url",
            "sitename",
            "language",
            "family",
            "state",
            "read_only",
            "closed_reason",
            "tags",
            "owners",
            "cluster",
            "created_at",
            "activated_at",
            "archived_at",
            "purged_at",
            "purge_after",
            "legal_hold",
            "size_class",
        ]
        read_only_fields = fields


class WikiUsageSerializer(serializers.ModelSerializer):
    """What the inventory saw the last time it looked (an error: why it could not)."""

    class Meta:
        model = WikiUsage
        fields = [
            "pages",
            "database_bytes",
            "last_edit_at",
            "storage_objects",
            "storage_bytes",
            "search_documents",
            "inspected_at",
            "error",
        ]
        read_only_fields = fields


class ArchiveSummarySerializer(serializers.Serializer):
    """The counts of the wiki's current archive, from its recorded manifest."""

    archive_id = serializers.CharField()
    manifest_sha256 = serializers.CharField(allow_null=True)
    database_tables = serializers.IntegerField()
    database_rows = serializers.IntegerField()
    database_dump_bytes = serializers.IntegerField(allow_null=True)
    search_documents = serializers.IntegerField(allow_null=True)
    storage_objects = serializers.IntegerField(allow_null=True)
    storage_bytes = serializers.IntegerField(allow_null=True)


class WikiResourcesSerializer(serializers.Serializer):
    """Where the wiki's data lives, from the registry (no resource is asked)."""

    database_name = serializers.CharField()
    cluster = serializers.CharField()
    storage_prefix = serializers.CharField()
    archive = ArchiveSummarySerializer(allow_null=True)


def archive_summary(wiki: Wiki) -> dict[str, Any] | None:
    manifest = wiki.archive_manifest
    if not manifest:
        return None
    database = manifest.get("database") or {}
    table_rows = database.get("table_rows") or {}
    return {
        "archive_id": manifest.get("archive_id") or wiki.current_archive_id,
        "manifest_sha256": manifest.get("manifest_sha256"),
        "database_tables": len(table_rows),
        "database_rows": sum(table_rows.values()),
        "database_dump_bytes": database.get("bytes"),
        "search_documents": (manifest.get("search") or {}).get("documents"),
        "storage_objects": (manifest.get("storage") or {}).get("objects"),
        "storage_bytes": (manifest.get("storage") or {}).get("bytes"),
    }


class WikiDetailSerializer(WikiSerializer):
    resources = serializers.SerializerMethodField()
    latest_operation = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()
    cloned_from = serializers.JSONField(
        read_only=True, help_text='A clone\'s source: {"wiki", "backup" or "archive"}; else null.'
    )

    class Meta(WikiSerializer.Meta):
        fields = [
            *WikiSerializer.Meta.fields,
            "resources",
            "latest_operation",
            "usage",
            "cloned_from",
        ]
        read_only_fields = fields

    @extend_schema_field(WikiUsageSerializer(allow_null=True))
    def get_usage(self, wiki: Wiki) -> dict[str, Any] | None:
        usage = WikiUsage.objects.filter(wiki=wiki).first()
        return WikiUsageSerializer(usage).data if usage is not None else None

    @extend_schema_field(WikiResourcesSerializer)
    def get_resources(self, wiki: Wiki) -> dict[str, Any]:
        return {
            "database_name": wiki.database_name,
            "cluster": wiki.cluster,
            "storage_prefix": wiki.storage_prefix,
            "archive": archive_summary(wiki),
        }

    @extend_schema_field(OperationSerializer(allow_null=True))
    def get_latest_operation(self, wiki: Wiki) -> dict[str, Any] | None:
        request = self.context["request"]
        latest = (
            Operation.objects.for_user(request.user)
            .select_related("actor")
            .filter(wiki_ref=wiki.id)
            .order_by("-created_at")
            .first()
        )
        if latest is None:
            return None
        return OperationSerializer(latest, context=self.context).data


class WikiCreateSerializer(StrictSerializer):
    id = StrictCharField(help_text="The wiki id: ^[a-z][a-z0-9]{1,31}$, not reserved, never used.")
    family = StrictCharField(default="default")
    sitename = StrictCharField(max_length=255)
    language = StrictCharField(default="en", max_length=35)
    tags = string_list(default=list)


class WikiUpdateSerializer(StrictSerializer):
    sitename = StrictCharField(required=False, max_length=255)
    owners = string_list(required=False, help_text="User names; replaces the owners.")
    tags = string_list(required=False, help_text="Tag names; replaces the tags.")


class CloseSerializer(StrictSerializer):
    reason = StrictCharField(max_length=500, help_text="Shown by MediaWiki while it is closed.")


class PurgeSerializer(StrictSerializer):
    confirm = StrictCharField(help_text="The wiki id again, as confirmation.")


# --- unarchive requests ------------------------------------------------------------------


class UnarchiveRequestSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:unarchiverequest-detail")
    wiki = serializers.CharField(source="wiki_id", read_only=True)
    requested_by = serializers.CharField(
        source="requested_by.username", read_only=True, allow_null=True
    )
    decided_by = serializers.CharField(
        source="decided_by.username", read_only=True, allow_null=True
    )

    class Meta:
        model = UnarchiveRequest
        fields = [
            "id",
            "url",
            "wiki",
            "state",
            "reason",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "operation",
        ]
        read_only_fields = fields


class UnarchiveRequestCreateSerializer(StrictSerializer):
    wiki = StrictCharField()
    reason = StrictCharField(max_length=2000)


class DecisionSerializer(StrictSerializer):
    note = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)


# --- families, tags, reserved names ------------------------------------------------------


class FamilySerializer(serializers.ModelSerializer):
    class Meta:
        model = Family
        fields = ["name", "database_pattern", "description"]
        read_only_fields = fields


class FamilyCreateSerializer(StrictSerializer):
    name = StrictCharField()
    database_pattern = StrictCharField(default="wiki_{id}")
    description = StrictCharField(default="", allow_blank=True, max_length=500)


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["name", "priority", "description"]
        read_only_fields = fields


class TagCreateSerializer(StrictSerializer):
    name = StrictCharField()
    priority = StrictIntegerField(default=0, min_value=-1000, max_value=1000)
    description = StrictCharField(default="", allow_blank=True, max_length=500)


class ReservedNameSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReservedName
        fields = ["name", "reason"]
        read_only_fields = fields


class ReservedNameCreateSerializer(StrictSerializer):
    name = StrictCharField()
    reason = StrictCharField(default="", allow_blank=True, max_length=200)


# --- audit -------------------------------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "before",
            "after",
            "operation_id",
            "request_id",
            "sequence",
        ]
        read_only_fields = fields


class AuditStreamSerializer(serializers.Serializer):
    """A page of the audit stream (documentation only: the view builds it)."""

    results = AuditEventSerializer(many=True)
    cursor = serializers.IntegerField(help_text="Where the next page starts: pass it as after.")
    next = serializers.URLField(help_text="The next page; poll it again when this one is empty.")


# --- tokens ------------------------------------------------------------------------------


class ApiTokenSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:apitoken-detail")
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "url",
            "name",
            "prefix",
            "scope",
            "owner",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.SerializerMethodField(
        help_text="The secret, shown this once: send it as 'Authorization: Token <secret>'."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        return self.context["raw_token"]


class ApiTokenCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    scope = serializers.ChoiceField(choices=ApiTokenScope.choices)
    expires_in_days = StrictIntegerField(required=False, min_value=1)


def absolute_url(request, view_name: str, pk: Any) -> str:
    return reverse(view_name, kwargs={"pk": pk}, request=request)


# --- configuration -------------------------------------------------------------------------


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
    """The request body checked by a write serializer (a 400 naming the field otherwise)."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
