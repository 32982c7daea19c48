"""Writing audit events: every service and the engine call `audit()` for each change.

Reading them for a SIEM (`audit_export`, `GET /api/v1/audit-events/stream/`) goes by the
event's `sequence`, given after it committed (ADR 8, docs/audit.md): ids are handed out
at insert, so a transaction that commits late can make id 10 visible after id 11, and a
cursor on ids would skip it. The sequencer numbers only what is committed, in turns under
one row lock, so the numbered events always form a gapless prefix that only grows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Case, QuerySet, Value, When

from farm.models import AuditEvent, AuditStream
from portal import logs

WORKER_ACTOR = "worker"
# Events numbered in one turn of the sequencer (one short transaction).
SEQUENCE_BATCH = 1000


def audit(
    *,
    actor,
    action: str,
    target: Any,
    before: dict | None = None,
    after: dict | None = None,
    operation_id=None,
) -> AuditEvent:
    """Append one event; `actor` is a user, or None for the worker."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_name=actor.get_username() if actor is not None else WORKER_ACTOR,
        action=action,
        target_type=type(target).__name__.lower(),
        target_id=str(target.pk),
        before=before,
        after=after,
        operation_id=operation_id,
        request_id=logs.current("request_id") or "",
    )


# --- the export stream -------------------------------------------------------------------


def sequence_committed(batch: int = SEQUENCE_BATCH) -> int:
    """Number the committed events that have no sequence yet, oldest id first; return how
    many. Turns are serialised by the AuditStream row lock, so each turn sees every
    commit of the turns before it (READ COMMITTED on MariaDB, one writer on SQLite)."""
    AuditStream.objects.get_or_create(pk=1)
    with transaction.atomic():
        stream = AuditStream.objects.select_for_update().get(pk=1)
        ids = list(
            AuditEvent.objects.filter(sequence__isnull=True)
            .order_by("id")
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            return 0
        first = stream.next_sequence
        AuditEvent.objects.filter(pk__in=ids, sequence__isnull=True).update(
            sequence=Case(*(When(pk=pk, then=Value(first + n)) for n, pk in enumerate(ids)))
        )
        AuditStream.objects.filter(pk=1).update(next_sequence=first + len(ids))
    return len(ids)


def events_after(position: int, limit: int) -> list[AuditEvent]:
    """The next `limit` events of the stream after `position` (a sequence; 0 = start)."""
    sequence_committed(batch=max(limit, SEQUENCE_BATCH))
    stream: QuerySet[AuditEvent] = AuditEvent.objects.filter(sequence__gt=position)
    return list(stream.order_by("sequence")[:limit])


def position_of_event(event_id: int) -> int:
    """Where to resume after the event with this id (the last one a consumer received)."""
    sequence_committed()
    sequence = AuditEvent.objects.filter(pk=event_id).values_list("sequence", flat=True).first()
    if sequence is None:
        raise AuditEvent.DoesNotExist(f"no audit event {event_id}")
    return sequence


def position_before_time(moment: datetime) -> int:
    """Where to start to get the events from `moment` on: before the first numbered event
    created at or after it (a late commit just before it may come along; none is lost)."""
    sequence_committed()
    first = (
        AuditEvent.objects.filter(created_at__gte=moment, sequence__isnull=False)
        .order_by("sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    if first is None:  # nothing since then yet: from the end
        last = AuditStream.objects.values_list("next_sequence", flat=True).first() or 1
        return last - 1
    return first - 1
