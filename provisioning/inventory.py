"""The inventory: what every wiki holds (drivers' inspect), and its size class from that.

An inventory is a run of kind `inventory`; its items are read-only inspections worked off
in batches of FARM_INVENTORY_BATCH by one task at a time (the next batch is enqueued by the
one before), so a 10,000-wiki farm is inspected without 10,000 operations. A wiki that
cannot be inspected (its database is missing, a driver fails) gets the class `unknown`
and the reason, never a guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from farm import publishing
from farm.audit import audit
from farm.models import SizeClass, Wiki
from provisioning.drivers import database_driver, search_driver, storage_driver
from provisioning.drivers.base import DriverError
from provisioning.models import Run, RunItem, RunItemState, RunKind, RunState, WikiUsage
from provisioning.steps import wiki_resources

ERROR_CHARS = 500


def size_class(pages: int | None, total_bytes: int | None) -> str:
    """The smallest class whose page and byte limits both hold (FARM_SIZE_CLASS_LIMITS;
    a byte limit of 0 means none)."""
    if pages is None or total_bytes is None:
        return SizeClass.UNKNOWN
    for name, limits in settings.FARM_SIZE_CLASS_LIMITS.items():
        within_bytes = not limits["bytes"] or total_bytes < limits["bytes"]
        if pages < limits["pages"] and within_bytes:
            return name
    return SizeClass.XLARGE


def inspect_wiki(wiki: Wiki) -> dict[str, Any]:
    """Usage of one wiki from its three drivers; raises DriverError when one cannot tell."""
    resources = wiki_resources(wiki)
    database = database_driver().inspect(resources)
    if not database.exists:
        raise DriverError(f"database {wiki.database_name} does not exist")
    storage = storage_driver().inspect(resources)
    search = search_driver().inspect(resources)
    return {
        "pages": database.counts.get("pages"),
        "database_bytes": database.bytes,
        "last_edit_at": _parse_time(database.details.get("last_edit")),
        "storage_objects": storage.counts.get("objects", 0),
        "storage_bytes": storage.bytes,
        "search_documents": sum(search.counts.values()),
    }


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else timezone.make_aware(parsed, UTC)


def record_usage(wiki: Wiki) -> tuple[str, str]:
    """Inspect a wiki and store what was seen; return (its size class, the error if any)."""
    now = timezone.now()
    try:
        usage = inspect_wiki(wiki)
        error = ""
    except (DriverError, OSError) as exc:
        usage = dict.fromkeys(
            (
                "pages",
                "database_bytes",
                "last_edit_at",
                "storage_objects",
                "storage_bytes",
                "search_documents",
            ),
        )
        error = str(exc)[:ERROR_CHARS]
    total_bytes = None
    if usage["database_bytes"] is not None:
        total_bytes = usage["database_bytes"] + (usage["storage_bytes"] or 0)
    new_class = SizeClass.UNKNOWN if error else size_class(usage["pages"], total_bytes)
    with transaction.atomic():
        WikiUsage.objects.update_or_create(
            wiki=wiki, defaults={**usage, "error": error, "inspected_at": now}
        )
        if wiki.size_class != new_class:
            Wiki.objects.filter(pk=wiki.pk).update(size_class=new_class)
            # The size-class dblists are farm-wide files: the coalesced publish rewrites them.
            transaction.on_commit(publishing.request_publish)
    return new_class, error


def inventory_batch(run_id: str) -> dict[str, Any]:
    """Inspect the next batch of an inventory run's items; enqueue the next batch or finish."""
    from provisioning import runs

    runs.dispatch(run_id)  # pending -> running
    run = Run.objects.filter(pk=run_id, kind=RunKind.INVENTORY).first()
    if run is None or run.state != RunState.RUNNING:
        return {"state": run.state if run else "missing"}
    items = list(
        run.items.filter(state=RunItemState.QUEUED)
        .select_related("wiki__family")
        .order_by("wiki_ref")[: settings.FARM_INVENTORY_BATCH]
    )
    for item in items:
        _inspect_item(item)
    if items:
        transaction.on_commit(lambda: runs.enqueue_dispatch(run_id))
        return {"inspected": len(items)}
    with transaction.atomic():
        finished = Run.objects.filter(pk=run_id, state=RunState.RUNNING).update(
            state=RunState.FINISHED, finished_at=timezone.now()
        )
        if finished:
            audit(actor=None, action="run.finished", target=run, after=runs.progress(run)["totals"])
    return {"finished": bool(finished)}


def _inspect_item(item: RunItem) -> None:
    started = timezone.now()
    if item.wiki is None:
        state, output = RunItemState.SKIPPED, "the wiki no longer exists"
    else:
        new_class, error = record_usage(item.wiki)
        state = RunItemState.FAILED if error else RunItemState.SUCCEEDED
        output = error or new_class
    RunItem.objects.filter(pk=item.pk, state=RunItemState.QUEUED).update(
        state=state,
        started_at=started,
        finished_at=timezone.now(),
        attempts=item.attempts + 1,
        output_tail=output,
    )


def start_scheduled_inventory() -> str:
    """Beat's daily inventory of every wiki; one at a time (none while one is active)."""
    from provisioning import runs

    if Run.objects.filter(kind=RunKind.INVENTORY, state__in=runs.ACTIVE_RUN_STATES).exists():
        return "an inventory is running already"
    run = runs.create_run_for_worker(kind=RunKind.INVENTORY, selection={"all": True})
    return run.pk
