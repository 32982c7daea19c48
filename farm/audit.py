"""Writing audit events: every service and the engine call `audit()` for each change."""

from __future__ import annotations

from typing import Any

from farm.models import AuditEvent

WORKER_ACTOR = "worker"


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
    )
