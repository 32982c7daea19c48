"""Lifecycle services: each validates, writes the registry and an Operation in one
transaction, writes its audit events and enqueues the operation once the transaction commits.

State changes are conditional UPDATEs and the open-operation slot is a unique index, so two
concurrent requests can never both start an operation on one wiki.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from farm import policies, publishing
from farm.audit import audit
from farm.errors import (
    InvalidInput,
    NotAllowed,
    NotFound,
    OperationInProgress,
    QuotaExceeded,
    WrongState,
)
from farm.models import Family, ReservedName, Tag, Wiki, WikiState
from farm.roles import is_ops, may_create_wikis
from farm.transactions import retry_on_lock_conflict
from farm.validators import (
    DATABASE_NAME_RE,
    LANGUAGE_RE,
    check_name,
    check_text,
    check_wiki_id,
    echo,
)
from provisioning import placement
from provisioning.models import (
    Operation,
    OperationKind,
    OperationState,
    StepStatus,
    UnarchiveRequest,
    UnarchiveRequestState,
)
from provisioning.steps import initial_steps
from provisioning.tasks import enqueue_operation, run_operation_task


def start_operation(
    *, wiki: Wiki, kind: str, actor, params: dict[str, Any] | None = None, run=None
) -> Operation:
    """Create the Operation in the caller's transaction; enqueue it when that commits (a
    run's on the queue `runs`)."""
    try:
        with transaction.atomic():
            operation = Operation.objects.create(
                wiki=wiki,
                wiki_ref=wiki.id,
                kind=kind,
                open_for_wiki=wiki.id,
                steps=initial_steps(kind, params),
                params=params or {},
                actor=actor,
                run=run,
                enqueued_at=timezone.now(),
            )
    except IntegrityError as exc:
        current = Operation.objects.filter(open_for_wiki=wiki.id).first()
        described = (
            f"{current.kind} operation {current.pk} ({current.state})" if current else "operation"
        )
        raise OperationInProgress(
            f"wiki {wiki.id} already has an open {described}; retry or abandon it first",
            field="wiki_id",
        ) from exc
    audit(
        actor=actor,
        action=f"operation.{kind}.requested",
        target=operation,
        after={"wiki": wiki.id, "params": operation.params},
        operation_id=operation.pk,
    )
    operation_id = str(operation.pk)
    transaction.on_commit(lambda: enqueue_operation(operation_id, run=run is not None))
    return operation


_start_operation = start_operation


def _transition(wiki: Wiki, *, allowed: tuple[str, ...], to: str, action: str) -> None:
    """Move the wiki's state with one conditional UPDATE, or say what its state is."""
    moved = Wiki.objects.filter(pk=wiki.pk, state__in=allowed).update(
        state=to, **publishing.dirty_fields()
    )
    if moved:
        transaction.on_commit(publishing.request_publish)
    else:
        current = Wiki.objects.filter(pk=wiki.pk).values_list("state", flat=True).first()
        raise WrongState(
            f"cannot {action} wiki {wiki.id}: it is {current}, "
            f"{action} needs {' or '.join(allowed)}",
            current_state=current or "missing",
        )
    wiki.state = to


def _new_archive_id() -> str:
    return f"{timezone.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


# --- create ------------------------------------------------------------------------------


def check_new_wiki_id(wiki_id: object) -> str:
    """The id if a new wiki may take it now (rule, reserved, taken, tombstoned)."""
    wiki_id = check_wiki_id(wiki_id)
    if ReservedName.objects.filter(name=wiki_id).exists():
        raise InvalidInput(f"wiki id {wiki_id!r} is reserved", field="wiki_id", rule="not_reserved")
    existing = Wiki.objects.filter(pk=wiki_id).values_list("state", flat=True).first()
    if existing == WikiState.PURGED:
        raise InvalidInput(
            f"wiki id {wiki_id!r} belonged to a purged wiki and is never reused",
            field="wiki_id",
            rule="unique_forever",
        )
    if existing:
        raise InvalidInput(f"wiki id {wiki_id!r} is taken", field="wiki_id", rule="unique")
    return wiki_id


def check_new_database_name(family: Family, wiki_id: str) -> str:
    """The database name the family gives the id, if it is valid and still free."""
    database_name = family.database_name_for(wiki_id)
    if not DATABASE_NAME_RE.fullmatch(database_name):
        raise InvalidInput(
            f"family {family.name} gives database name {database_name!r}, "
            f"which breaks {DATABASE_NAME_RE.pattern}",
            field="family",
            rule=DATABASE_NAME_RE.pattern,
        )
    if Wiki.objects.filter(database_name=database_name).exists():
        raise InvalidInput(
            f"database name {database_name!r} is already used by another wiki",
            field="wiki_id",
            rule="unique_database_name",
        )
    return database_name


def check_quota(actor) -> None:
    if is_ops(actor):
        return
    # Lock the caller's row so two parallel creates cannot both pass the count.
    get_user_model().objects.select_for_update().filter(pk=actor.pk).first()
    owned = Wiki.objects.filter(owners=actor).live().count()
    if owned >= settings.FARM_WIKI_QUOTA:
        raise QuotaExceeded(
            f"you own {owned} wikis; the quota is {settings.FARM_WIKI_QUOTA}",
            field="wiki_id",
            rule=f"quota:{settings.FARM_WIKI_QUOTA}",
        )


@retry_on_lock_conflict
def wiki_create(
    *,
    actor,
    wiki_id: object,
    family: object,
    sitename: object,
    language: object = "en",
    tags: list[str] | tuple[str, ...] = (),
    owners: list | None = None,
) -> Operation:
    if not may_create_wikis(actor):
        raise NotAllowed("only wiki admins and ops may create wikis")
    wiki_id = check_new_wiki_id(wiki_id)
    family_obj = Family.objects.filter(name=family).first() if isinstance(family, str) else None
    if family_obj is None:
        raise InvalidInput(f"family {family!r} does not exist", field="family", rule="exists")
    sitename = check_text(sitename, field="sitename", max_length=255)
    language = check_name(language, field="language", pattern=LANGUAGE_RE)
    tag_objs = list(Tag.objects.filter(name__in=list(tags)))
    unknown = sorted(set(tags) - {tag.name for tag in tag_objs})
    if unknown:
        raise InvalidInput(f"unknown tags {unknown}", field="tags", rule="exists")
    check_quota(actor)
    database_name = check_new_database_name(family_obj, wiki_id)
    try:
        with transaction.atomic():
            wiki = Wiki.objects.create(
                id=wiki_id,
                family=family_obj,
                sitename=sitename,
                language=language,
                database_name=database_name,
                storage_prefix=f"wikis/{wiki_id}/",
                cluster=placement.choose(),
                created_by=actor,
            )
    except IntegrityError as exc:  # a parallel request took the id or database name
        raise InvalidInput(f"wiki id {wiki_id!r} is taken", field="wiki_id", rule="unique") from exc
    wiki.tags.set(tag_objs)
    wiki.owners.set(owners if owners is not None else [actor])
    audit(
        actor=actor,
        action="wiki.create",
        target=wiki,
        after={
            "family": family_obj.name,
            "sitename": sitename,
            "language": language,
            "database_name": database_name,
            "tags": [t.name for t in tag_objs],
        },
    )
    placement.take(wiki.cluster)  # last: the cluster's row stays locked until commit
    return _start_operation(wiki=wiki, kind=OperationKind.CREATE, actor=actor)


# --- close and reopen --------------------------------------------------------------------


@transaction.atomic
def wiki_close(*, actor, wiki_id: object, reason: object) -> Operation:
    """Make a wiki read-only while it stays served, with the reason MediaWiki shows."""
    wiki = policies.visible_wiki(actor, wiki_id)
    policies.require_closer(actor, wiki)
    reason = check_text(reason, field="reason", max_length=500)
    operation = _start_operation(
        wiki=wiki, kind=OperationKind.CLOSE, actor=actor, params={"reason": reason}
    )
    _transition(wiki, allowed=(WikiState.ACTIVE,), to=WikiState.CLOSED, action="close")
    Wiki.objects.filter(pk=wiki.pk).update(closed_reason=reason)
    audit(actor=actor, action="wiki.close", target=wiki, after={"reason": reason})
    return operation


@transaction.atomic
def wiki_reopen(*, actor, wiki_id: object) -> Operation:
    """Make a closed wiki writable again."""
    wiki = policies.visible_wiki(actor, wiki_id)
    policies.require_closer(actor, wiki)
    before = wiki.closed_reason
    operation = _start_operation(wiki=wiki, kind=OperationKind.REOPEN, actor=actor)
    _transition(wiki, allowed=(WikiState.CLOSED,), to=WikiState.ACTIVE, action="reopen")
    Wiki.objects.filter(pk=wiki.pk).update(closed_reason="")
    audit(actor=actor, action="wiki.reopen", target=wiki, before={"reason": before})
    return operation


# --- archive and unarchive ---------------------------------------------------------------


@transaction.atomic
def wiki_archive(*, actor, wiki_id: object) -> Operation:
    wiki = policies.visible_wiki(actor, wiki_id)
    policies.require_manager(actor, wiki)
    operation = _start_operation(
        wiki=wiki, kind=OperationKind.ARCHIVE, actor=actor, params={"archive_id": _new_archive_id()}
    )
    _transition(
        wiki,
        allowed=(WikiState.ACTIVE, WikiState.CLOSED),
        to=WikiState.ARCHIVING,
        action="archive",
    )
    return operation


@transaction.atomic
def unarchive_request(*, actor, wiki_id: object, reason: object) -> UnarchiveRequest:
    wiki = policies.visible_wiki(actor, wiki_id)
    policies.require_manager(actor, wiki)
    reason = check_text(reason, field="reason", max_length=2000)
    if wiki.state != WikiState.ARCHIVED:
        raise WrongState(
            f"cannot request unarchive of wiki {wiki.id}: it is {wiki.state}, not archived",
            current_state=wiki.state,
        )
    try:
        with transaction.atomic():
            request = UnarchiveRequest.objects.create(
                wiki=wiki, pending_for_wiki=wiki.id, reason=reason, requested_by=actor
            )
    except IntegrityError as exc:
        raise OperationInProgress(
            f"wiki {wiki.id} already has a pending unarchive request", field="wiki_id"
        ) from exc
    audit(
        actor=actor,
        action="unarchive.request",
        target=request,
        after={"wiki": wiki.id, "reason": reason},
    )
    return request


def _pending_request(actor, request_id: Any) -> UnarchiveRequest:
    if not is_ops(actor):
        raise NotAllowed("only ops may decide unarchive requests")
    try:
        request = UnarchiveRequest.objects.select_related("wiki").get(pk=int(request_id))
    except (UnarchiveRequest.DoesNotExist, TypeError, ValueError):
        raise NotFound(f"unarchive request {request_id!r} not found", field="request_id") from None
    if request.state != UnarchiveRequestState.PENDING:
        raise WrongState(
            f"unarchive request {request.pk} is already {request.state}",
            current_state=request.state,
        )
    return request


def _decide(request: UnarchiveRequest, *, actor, state: str, note: str) -> None:
    decided = UnarchiveRequest.objects.filter(
        pk=request.pk, state=UnarchiveRequestState.PENDING
    ).update(
        state=state,
        pending_for_wiki=None,
        decided_by=actor,
        decided_at=timezone.now(),
        decision_note=note,
    )
    if not decided:
        raise WrongState(
            f"unarchive request {request.pk} was decided meanwhile", current_state="decided"
        )
    request.state = state


@transaction.atomic
def unarchive_approve(*, actor, request_id: object, note: object = "") -> Operation:
    request = _pending_request(actor, request_id)
    note = check_text(note, field="note", max_length=2000, required=False)
    if settings.FARM_UNARCHIVE_TWO_PERSON_RULE and request.requested_by_id == actor.pk:
        raise NotAllowed(
            "the two-person rule is on: another ops member must approve your own request",
            rule="two_person",
        )
    wiki = request.wiki
    operation = _start_operation(
        wiki=wiki,
        kind=OperationKind.UNARCHIVE,
        actor=actor,
        params={"archive_id": wiki.current_archive_id, "request_id": request.pk},
    )
    _transition(wiki, allowed=(WikiState.ARCHIVED,), to=WikiState.UNARCHIVING, action="unarchive")
    _decide(request, actor=actor, state=UnarchiveRequestState.APPROVED, note=note)
    UnarchiveRequest.objects.filter(pk=request.pk).update(operation=operation)
    audit(
        actor=actor,
        action="unarchive.approve",
        target=request,
        after={"operation": str(operation.pk)},
    )
    return operation


@transaction.atomic
def unarchive_deny(*, actor, request_id: object, note: object = "") -> UnarchiveRequest:
    request = _pending_request(actor, request_id)
    note = check_text(note, field="note", max_length=2000, required=False)
    _decide(request, actor=actor, state=UnarchiveRequestState.DENIED, note=note)
    audit(actor=actor, action="unarchive.deny", target=request, after={"note": note})
    return request


# --- purge -------------------------------------------------------------------------------


@transaction.atomic
def wiki_purge(*, actor, wiki_id: object, confirm: object = None) -> Operation:
    if not is_ops(actor):
        # Not even the wiki's owner: purge is the one door that cannot be undone.
        policies.visible_wiki(actor, wiki_id)
        raise NotAllowed("only ops may purge wikis")
    wiki = policies.visible_wiki(actor, wiki_id)
    if wiki.legal_hold:
        raise WrongState(
            f"wiki {wiki.id} is under legal hold", current_state=wiki.state, rule="legal_hold"
        )
    allowed: tuple[str, ...] = (WikiState.ARCHIVED,)
    if confirm is not None and confirm != wiki.id:
        raise InvalidInput(
            f"confirmation {echo(confirm)} does not match the wiki id {wiki.id!r}",
            field="confirm",
            rule="equals_wiki_id",
        )
    if confirm == wiki.id:
        allowed = (WikiState.ARCHIVED, WikiState.ACTIVE, WikiState.CLOSED)
    elif wiki.state in (WikiState.ACTIVE, WikiState.CLOSED):
        raise InvalidInput(
            f"wiki {wiki.id} is {wiki.state}: type its id as confirmation to purge it",
            field="confirm",
            rule="equals_wiki_id",
        )
    operation = _start_operation(
        wiki=wiki, kind=OperationKind.PURGE, actor=actor, params={"from_state": wiki.state}
    )
    _transition(wiki, allowed=allowed, to=WikiState.PURGING, action="purge")
    return operation


# --- retry and abandon -------------------------------------------------------------------


def _visible_operation(actor, operation_id: object) -> Operation:
    try:
        operation_uuid = uuid.UUID(str(operation_id))
    except ValueError:
        raise NotFound(f"operation {operation_id!r} not found", field="operation_id") from None
    operation = (
        Operation.objects.for_user(actor).select_related("wiki").filter(pk=operation_uuid).first()
    )
    if operation is None:
        raise NotFound(f"operation {operation_id!r} not found", field="operation_id")
    return operation


@transaction.atomic
def operation_retry(*, actor, operation_id: object) -> Operation:
    operation = _visible_operation(actor, operation_id)
    if operation.wiki is not None:
        policies.require_manager(actor, operation.wiki)
    elif not is_ops(actor):  # an abandon whose wiki row is gone: auditors see it, only read
        raise NotAllowed(f"only ops may retry operation {operation.pk}")
    if operation.run_id is not None:
        raise WrongState(
            f"operation {operation.pk} is an item of run {operation.run_id}: retry the run's "
            "failed items instead",
            current_state=operation.state,
        )
    steps = operation.steps
    for step in steps:
        if step["status"] in (StepStatus.FAILED, StepStatus.RETRYING, StepStatus.RUNNING):
            step["status"] = StepStatus.PENDING
            step.pop("transient_errors", None)
    retried = Operation.objects.filter(pk=operation.pk, state=OperationState.FAILED).update(
        state=OperationState.PENDING,
        steps=steps,
        error="",
        failed_step="",
        finished_at=None,
        run_after=None,
        enqueued_at=timezone.now(),
    )
    if not retried:
        raise WrongState(
            f"operation {operation.pk} is {operation.state}; only a failed one can be retried",
            current_state=operation.state,
        )
    audit(actor=actor, action="operation.retry", target=operation, operation_id=operation.pk)
    run_operation_task.delay_on_commit(str(operation.pk))
    operation.refresh_from_db()
    return operation


@transaction.atomic
def operation_abandon(*, actor, operation_id: object) -> Operation:
    """Give up a failed create: remove what it made and free the wiki id."""
    operation = _visible_operation(actor, operation_id)
    if operation.wiki is not None:
        policies.require_manager(actor, operation.wiki)
    if operation.kind != OperationKind.CREATE or operation.wiki is None:
        raise WrongState(
            "only a failed create operation can be abandoned", current_state=operation.state
        )
    closed = Operation.objects.filter(
        pk=operation.pk, state=OperationState.FAILED, wiki__state=WikiState.PROVISIONING
    ).update(state=OperationState.ABANDONED, open_for_wiki=None, finished_at=timezone.now())
    if not closed:
        raise WrongState(
            f"operation {operation.pk} is {operation.state}; only a failed create can be abandoned",
            current_state=operation.state,
        )
    touched = {step["name"]: bool(step.get("touched")) for step in operation.steps}
    audit(actor=actor, action="operation.abandon", target=operation, operation_id=operation.pk)
    return _start_operation(
        wiki=operation.wiki,
        kind=OperationKind.ABANDON,
        actor=actor,
        params={"create_operation": str(operation.pk), "touched": touched},
    )
