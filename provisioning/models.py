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
