"""Operations (one lifecycle action on one wiki, with its steps) and unarchive requests."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from farm.roles import sees_all_wikis


class OperationKind(models.TextChoices):
    CREATE = "create"
    CLOSE = "close"
    REOPEN = "reopen"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    PURGE = "purge"
    ABANDON = "abandon"
    # Farm-wide work (a Run's items) and restores.
    BACKUP = "backup"
    MIGRATE = "migrate"
    RESTORE = "restore"  # in place, from a backup or an archive of the same wiki
    CLONE = "clone"  # restore as a new wiki id


class OperationState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"


OPEN_STATES = (OperationState.PENDING, OperationState.RUNNING, OperationState.FAILED)


class StepStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    RETRYING = "retrying"


class OperationQuerySet(models.QuerySet):
    def for_user(self, user) -> OperationQuerySet:
        if not user.is_authenticated:
            return self.none()
        if sees_all_wikis(user):
            return self
        return self.filter(wiki__owners=user)

    def open(self) -> OperationQuerySet:
        return self.filter(state__in=OPEN_STATES)


class Operation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # SET_NULL keeps the history of an abandoned wiki whose id was freed.
    wiki = models.ForeignKey(
        "farm.Wiki", null=True, on_delete=models.SET_NULL, related_name="operations"
    )
    wiki_ref = models.CharField(max_length=32, db_index=True)
    kind = models.CharField(max_length=16, choices=OperationKind.choices)
    state = models.CharField(
        max_length=16, choices=OperationState.choices, default=OperationState.PENDING
    )
    # Holds the wiki id while the operation is open (pending, running or failed) and NULL
    # once it is closed. Its unique index is how the database, not Python, enforces one
    # open operation per wiki on every backend (MariaDB has no partial indexes).
    open_for_wiki = models.CharField(max_length=32, null=True, blank=True, unique=True)
    steps = models.JSONField(default=list)
    params = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    failed_step = models.CharField(max_length=64, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The farm-wide run this operation is one item of (its queue and its report).
    run = models.ForeignKey(
        "provisioning.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    # A new token per claim: a worker whose claim was taken over (sweeper) can no longer
    # record anything, because its conditional updates no longer match.
    claim_token = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    run_after = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = OperationQuerySet.as_manager()

    class Meta:
        # Idempotency keys live with the API (farm.IdempotencyRecord): they replay the
        # whole response, not just the operation.
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.wiki_ref} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def progress(self) -> float:
        if not self.steps:
            return 0.0
        done = sum(1 for step in self.steps if step["status"] == StepStatus.DONE)
        return done / len(self.steps)

    @property
    def current_step(self) -> str:
        for step in self.steps:
            if step["status"] != StepStatus.DONE:
                return step["name"]
        return ""

    def result_of(self, step_name: str) -> dict:
        for step in self.steps:
            if step["name"] == step_name:
                return step.get("result") or {}
        return {}


class UnarchiveRequestState(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class UnarchiveRequestQuerySet(models.QuerySet):
    def for_user(self, user) -> UnarchiveRequestQuerySet:
        if not user.is_authenticated:
            return self.none()
        if sees_all_wikis(user):
            return self
        return self.filter(wiki__owners=user)


class UnarchiveRequest(models.Model):
    wiki = models.ForeignKey(
        "farm.Wiki", on_delete=models.CASCADE, related_name="unarchive_requests"
    )
    # The wiki id while the request is pending, NULL once decided: one pending request per
    # wiki, enforced by a unique index.
    pending_for_wiki = models.CharField(max_length=32, null=True, blank=True, unique=True)
    state = models.CharField(
        max_length=16,
        choices=UnarchiveRequestState.choices,
        default=UnarchiveRequestState.PENDING,
    )
    reason = models.TextField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = UnarchiveRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"unarchive {self.wiki_id} ({self.state})"


# --- farm-wide runs (provisioning/runs.py) ------------------------------------------------


class RunKind(models.TextChoices):
    BACKUP = "backup"
    MIGRATE = "migrate"
    INVENTORY = "inventory"


class RunState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    HALTED = "halted"
    CANCELLED = "cancelled"
    FINISHED = "finished"


ACTIVE_RUN_STATES = (RunState.PENDING, RunState.RUNNING)


class RunItemState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class Run(models.Model):
    """A farm-wide batch over a selection of wikis, one item (and, for backup and migrate,
    one Operation) per wiki. Its id names the backup folder: backups/<run id>/<wiki id>/."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    kind = models.CharField(max_length=16, choices=RunKind.choices)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.PENDING)
    # What was selected, in the caller's words: {"all": true} | {"family": name} |
    # {"tag": name} | {"size_classes": [...]} | {"wiki_ids": [...]}.
    selection = models.JSONField(default=dict)
    params = models.JSONField(default=dict, blank=True)
    # At most this many items of a size class run at once: {"small": 8, ...}.
    parallelism = models.JSONField(default=dict)
    halt_after_failures = models.PositiveIntegerField(null=True, blank=True)
    halt_failure_share = models.FloatField(null=True, blank=True)
    halted_reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} run {self.id} ({self.state})"


class RunItem(models.Model):
    """One wiki of a run: its class, its outcome, and the log line of the report."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="items")
    wiki = models.ForeignKey("farm.Wiki", null=True, on_delete=models.SET_NULL, related_name="+")
    wiki_ref = models.CharField(max_length=32)
    size_class = models.CharField(max_length=8)
    state = models.CharField(
        max_length=16, choices=RunItemState.choices, default=RunItemState.QUEUED
    )
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    bytes = models.PositiveBigIntegerField(default=0)
    output_tail = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "wiki_ref"]
        constraints = [
            models.UniqueConstraint(fields=["run", "wiki_ref"], name="run_item_once_per_wiki")
        ]
        indexes = [
            # The dispatcher's question: how many of this class are running, which are next.
            models.Index(fields=["run", "state", "size_class"], name="run_item_dispatch"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.wiki_ref} ({self.state})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


class WikiUsage(models.Model):
    """What the inventory saw of a wiki the last time it looked (drivers' inspect)."""

    wiki = models.OneToOneField(
        "farm.Wiki", primary_key=True, on_delete=models.CASCADE, related_name="usage"
    )
    pages = models.PositiveBigIntegerField(null=True, blank=True)
    database_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    last_edit_at = models.DateTimeField(null=True, blank=True)
    storage_objects = models.PositiveBigIntegerField(null=True, blank=True)
    storage_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    search_documents = models.PositiveBigIntegerField(null=True, blank=True)
    # Why the wiki could not be inspected (its class is then unknown).
    error = models.CharField(max_length=500, blank=True)
    inspected_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"usage of {self.wiki_id}"


class BackupKind(models.TextChoices):
    RUN = "run"  # a backup run's item
    BEFORE_RESTORE = "before-restore"
    BEFORE_MIGRATION = "before-migration"


class WikiBackup(models.Model):
    """A verified backup of one wiki under backups/<backup_id>/<wiki_id>/ in the archive
    sink; the newest FARM_BACKUP_KEEP per wiki are kept."""

    wiki = models.ForeignKey("farm.Wiki", on_delete=models.CASCADE, related_name="backups")
    backup_id = models.CharField(max_length=40)
    kind = models.CharField(max_length=16, choices=BackupKind.choices, default=BackupKind.RUN)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    manifest_sha256 = models.CharField(max_length=64)
    bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["wiki", "backup_id"], name="backup_once_per_wiki")
        ]

    def __str__(self) -> str:
        return f"backup {self.backup_id} of {self.wiki_id}"


class WikiMigration(models.Model):
    """A named migration this wiki's database has: a rerun skips it."""

    wiki = models.ForeignKey("farm.Wiki", on_delete=models.CASCADE, related_name="migrations")
    name = models.CharField(max_length=64)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    applied_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["wiki", "applied_at"]
        constraints = [
            models.UniqueConstraint(fields=["wiki", "name"], name="migration_once_per_wiki")
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.wiki_id}"
