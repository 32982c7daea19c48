"""Serializers of farm-wide runs (their items, progress and report) and of restores.

The write serializers check only shapes: the selection, parallelism, halt thresholds and
migration params go to `provisioning.runs` as given, which checks them for the API, the UI
and the CLI alike. Their documented shapes are what the services accept.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from farm.api.fields import StrictCharField, StrictSerializer
from farm.models import SizeClass
from provisioning import runs
from provisioning.models import Run, RunItem, RunItemState, RunKind

SIZE_CLASSES = list(SizeClass.values)

# --- what a run is asked for ---------------------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "description": "Exactly one of: all wikis, a family, a tag, size classes or wiki ids.",
        "properties": {
            "all": {"type": "boolean", "description": "Must be true."},
            "family": {"type": "string"},
            "tag": {"type": "string"},
            "size_classes": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "description": ", ".join(SIZE_CLASSES)},
            },
            "wiki_ids": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        },
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
    }
)
class SelectionField(serializers.JSONField):
    """Passed to the service as given (`runs.check_selection` names what is wrong)."""


@extend_schema_field(
    {
        "type": "object",
        "description": (
            "At most this many wikis of a size class at once; classes left out take "
            "FARM_RUN_PARALLELISM. Each value is 1 to 1000."
        ),
        "properties": {
            name: {"type": "integer", "minimum": 1, "maximum": 1000} for name in SIZE_CLASSES
        },
        "additionalProperties": False,
    }
)
class ParallelismField(serializers.JSONField):
    pass


@extend_schema_field({"type": "integer", "minimum": 1, "nullable": True})
class HaltAfterField(serializers.JSONField):
    pass


@extend_schema_field(
    {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1, "nullable": True}
)
class HaltShareField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "description": (
            "A migrate run's: its name (a rerun skips the wikis that have it) and exactly one "
            "of sql_file (a path on the portal host, MediaWiki placeholders substituted) or "
            "command (run without a shell; {wiki} and {dbname} are substituted). Backup and "
            "inventory runs take none."
        ),
        "properties": {
            "migration": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,63}$"},
            "sql_file": {"type": "string"},
            "command": {"type": "string"},
            "backup_first": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
    }
)
class RunParamsField(serializers.JSONField):
    pass


class RunPreviewRequestSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=RunKind.choices)
    selection = SelectionField()
    parallelism = ParallelismField(required=False, default=None)


class RunCreateSerializer(RunPreviewRequestSerializer):
    halt_after_failures = HaltAfterField(
        required=False, default=None, help_text="Halt once this many wikis failed."
    )
    halt_failure_share = HaltShareField(
        required=False, default=None, help_text="Halt once this share of the wikis failed."
    )
    params = RunParamsField(required=False, default=None)


class InventoryCreateSerializer(StrictSerializer):
    selection = SelectionField(required=False, default=None, help_text='Default {"all": true}.')


# --- what a run shows ----------------------------------------------------------------------


class RunItemCountsSerializer(serializers.Serializer):
    """Items in each state."""

    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class RunProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Items no longer queued or running.")
    totals = RunItemCountsSerializer()
    per_class = serializers.DictField(
        child=RunItemCountsSerializer(), help_text="Per size class, the classes with items only."
    )


class RunSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:run-detail")
    selection = SelectionField(read_only=True)
    params = serializers.JSONField(read_only=True, help_text="As checked (with the file's sha256).")
    parallelism = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "url",
            "kind",
            "state",
            "selection",
            "params",
            "parallelism",
            "halt_after_failures",
            "halt_failure_share",
            "halted_reason",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    progress = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "progress"]
        read_only_fields = fields

    @extend_schema_field(RunProgressSerializer)
    def get_progress(self, run: Run) -> dict[str, Any]:
        return runs.progress(run)


class RunItemSerializer(serializers.ModelSerializer):
    wiki = serializers.CharField(source="wiki_ref", read_only=True)
    size_class = serializers.ChoiceField(choices=SizeClass.choices, read_only=True)
    operation = serializers.UUIDField(source="operation_id", read_only=True, allow_null=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = RunItem
        fields = [
            "wiki",
            "size_class",
            "state",
            "attempts",
            "operation",
            "started_at",
            "finished_at",
            "duration_seconds",
            "bytes",
            "output_tail",
        ]
        read_only_fields = fields


class RunPreviewSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RunKind.choices)
    selection = SelectionField()
    total = serializers.IntegerField()
    per_class = serializers.DictField(
        child=serializers.IntegerField(), help_text="Selected wikis per size class."
    )
    parallelism = serializers.DictField(
        child=serializers.IntegerField(), help_text="The limit per size class."
    )
    estimated_parallelism = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Wikis of each class running at once while the class is worked off.",
    )


class RunReportRowSerializer(serializers.Serializer):
    wiki_id = serializers.CharField()
    size_class = serializers.ChoiceField(choices=SizeClass.choices)
    state = serializers.ChoiceField(choices=RunItemState.choices)
    attempts = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    bytes = serializers.IntegerField()
    output_tail = serializers.CharField(allow_blank=True)


class RunReportSerializer(serializers.Serializer):
    """The completion report (`runs.report`); the CSV has one line per item."""

    run = serializers.CharField()
    kind = serializers.ChoiceField(choices=RunKind.choices)
    state = serializers.CharField()
    selection = SelectionField()
    params = serializers.JSONField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Skipped and cancelled items.")
    bytes = serializers.IntegerField()
    elapsed_seconds = serializers.FloatField()
    halted_reason = serializers.CharField(allow_blank=True)
    items = RunReportRowSerializer(many=True)


# --- restores ------------------------------------------------------------------------------


class RestoreSourceSerializer(serializers.Serializer):
    """A backup or the archive a wiki can be restored from (`restores.restore_sources`)."""

    kind = serializers.ChoiceField(choices=[("backup", "backup"), ("archive", "archive")])
    id = serializers.CharField(help_text="What `from` names in a restore or a clone.")
    manifest_sha256 = serializers.CharField(allow_null=True)
    backup_kind = serializers.CharField(required=False, help_text="Backups only.")
    created_at = serializers.DateTimeField(required=False, help_text="Backups only.")
    bytes = serializers.IntegerField(required=False, help_text="Backups only.")


class _FromSerializer(StrictSerializer):
    # `from` is a Python keyword: the field is added by name.
    def get_fields(self):
        source = StrictCharField(help_text="A backup id or the archive id (see backups/).")
        return {"from": source, **super().get_fields()}


class WikiRestoreSerializer(_FromSerializer):
    confirm = StrictCharField(help_text="The wiki id again: its database is replaced.")


class WikiCloneSerializer(_FromSerializer):
    new_id = StrictCharField(help_text="The new wiki's id: ^[a-z][a-z0-9]{1,31}$, never used.")
    sitename = StrictCharField(
        required=False, default=None, max_length=255, help_text="Default: the source's."
    )
