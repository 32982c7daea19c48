"""Incremental, coalesced export publishing (DESIGN section 6).

A registry change marks the wikis whose export it affects as dirty, in the change's own
transaction (`mark_wikis`, `mark_block`, `dirty_fields`): one wiki for a wiki edit, the
family's or tag's wikis for a layer change, every wiki for a farm default or a new setting.
A farm-wide block's change writes one ExportMark naming the block (constant cost in the
request); the publisher turns it into its wikis' marks first thing (`expand_marks`).
Once that transaction commits, `request_publish` enqueues one publish task, unless one is
already requested: a burst of a thousand changes enqueues one task, which starts a publish
window later.

`publish` is single-flight (a lease on the one ExportPublisher row). It rewrites the dirty
wikis' files in batches, oldest mark first, clearing each mark only if the wiki's serial is
still the one it rendered (a change made meanwhile keeps its mark), and then the farm-wide
files, at most once per window. A publish killed halfway leaves the marks of what it did not
finish, and the next one (requested, or started by beat's sweep) finishes the job.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from farm import exports
from farm.config import Block
from farm.models import ConfigLayer, ExportMark, ExportPublisher, Wiki, WikiState

# A publisher that stops renewing its lease (killed) gives way to the next after this long.
LEASE_SECONDS = 120


def publish_window() -> float:
    return float(getattr(settings, "FARM_EXPORT_PUBLISH_WINDOW", 2.0))


# --- marking -----------------------------------------------------------------------------


def dirty_fields() -> dict[str, Any]:
    """The UPDATE expressions that mark a wiki's export dirty, to add to another UPDATE."""
    now = Value(timezone.now(), output_field=DateTimeField())
    return {
        "export_serial": F("export_serial") + 1,
        "export_dirty_since": Coalesce(F("export_dirty_since"), now),
    }


def mark_wikis(wikis: QuerySet[Wiki]) -> int:
    """Mark these wikis' exports dirty in the caller's transaction; publish after commit."""
    count = wikis.update(**dirty_fields())
    transaction.on_commit(request_publish)
    return count


def mark_wiki(wiki_id: str) -> int:
    return mark_wikis(Wiki.objects.filter(pk=wiki_id))


def _inheriting(block: Block) -> QuerySet[Wiki]:
    """The wikis whose exports a change to `block` affects."""
    if block.layer == ConfigLayer.WIKI:
        return Wiki.objects.filter(pk=block.target)
    wikis = Wiki.objects.exclude(state=WikiState.PURGED)
    if block.layer == ConfigLayer.FAMILY:
        return wikis.filter(family__name=block.target)
    if block.layer == ConfigLayer.TAG:
        return wikis.filter(
            pk__in=Wiki.tags.through.objects.filter(tag__name=block.target).values("wiki_id")
        )
    return wikis


def mark_block(block: Block) -> None:
    """Mark every wiki that inherits from a config block. A wiki's own block marks it at
    once; a farm-wide block (default, family, tag) writes one ExportMark, so the change's
    transaction costs the same for a family of 10 wikis and one of 10,000."""
    if block.layer == ConfigLayer.WIKI:
        mark_wiki(block.target)
        return
    ExportMark.objects.create(layer=block.layer, target=block.target)
    transaction.on_commit(request_publish)


def mark_all() -> None:
    """A catalog change: every wiki's effective settings may differ."""
    mark_block(Block(ConfigLayer.DEFAULT))


def expand_marks() -> int:
    """Turn each pending ExportMark into the dirty marks of its wikis, oldest first; each in
    one transaction with the mark's removal, so a crash repeats it or not at all."""
    expanded = 0
    for mark in list(ExportMark.objects.order_by("id")):
        with transaction.atomic():
            marked = _inheriting(Block(mark.layer, mark.target)).update(**dirty_fields())
            ExportMark.objects.filter(pk=mark.pk).delete()
        expanded += marked
    return expanded


# --- requesting a publish ----------------------------------------------------------------


def _publisher() -> QuerySet[ExportPublisher]:
    ExportPublisher.objects.get_or_create(pk=1)
    return ExportPublisher.objects.filter(pk=1)


def request_publish() -> bool:
    """Enqueue one publish a window from now, unless one is requested already."""
    # Imported here: the task module imports this one.
    from farm.tasks import publish_exports_task

    if not _publisher().filter(requested_at__isnull=True).update(requested_at=timezone.now()):
        return False
    publish_exports_task.apply_async(countdown=publish_window())
    return True


# --- publishing --------------------------------------------------------------------------


def _take_lease(owner: str) -> bool:
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return bool(
        _publisher()
        .filter(free)
        .update(lease_until=now + timedelta(seconds=LEASE_SECONDS), lease_owner=owner)
    )


def _renew_lease(owner: str) -> None:
    until = timezone.now() + timedelta(seconds=LEASE_SECONDS)
    ExportPublisher.objects.filter(pk=1, lease_owner=owner).update(lease_until=until)


def _release_lease(owner: str) -> None:
    ExportPublisher.objects.filter(pk=1, lease_owner=owner).update(lease_until=None, lease_owner="")


def _dirty_batch(size: int) -> list[tuple[str, int]]:
    return list(
        Wiki.objects.filter(export_dirty_since__isnull=False)
        .order_by("export_dirty_since", "id")
        .values_list("id", "export_serial")[:size]
    )


def _clear_marks(batch: list[tuple[str, int]]) -> int:
    """Clear each mark whose serial is still the one rendered, in one statement."""
    still_as_rendered = Q()
    for wiki_id, serial in batch:
        still_as_rendered |= Q(pk=wiki_id, export_serial=serial)
    return Wiki.objects.filter(still_as_rendered).update(export_dirty_since=None)


def publish_due(*, respect_window: bool = True) -> float | None:
    """Seconds to wait before the farm-wide files may be rewritten again, or None."""
    if not respect_window:
        return None
    state = _publisher().values_list("lists_written_at", flat=True).first()
    if state is None:
        return None
    wait = publish_window() - (timezone.now() - state).total_seconds()
    return wait if wait > 0 else None


def publish(*, respect_window: bool = True) -> dict[str, Any]:
    """Write the dirty wikis' files and then the farm-wide files, if there is anything to
    publish. Returns what was done, or `retry_in` seconds when this is not the time."""
    state: Mapping[str, Any] = _publisher().values("requested_at").first() or {}
    pending = ExportMark.objects.exists() or bool(_dirty_batch(1))
    if state.get("requested_at") is None and not pending:
        return {"idle": True}
    wait = publish_due(respect_window=respect_window)
    if wait is not None:
        return {"retry_in": wait}
    owner = uuid.uuid4().hex
    if not _take_lease(owner):
        return {"retry_in": publish_window()}
    try:
        # From here a new change requests a new publish: it may come after our last batch.
        ExportPublisher.objects.filter(pk=1).update(requested_at=None)
        expand_marks()
        wikis = written = 0
        while batch := _dirty_batch(exports.PUBLISH_BATCH):
            written += exports.write_wiki_files([wiki_id for wiki_id, _ in batch])
            _clear_marks(batch)
            wikis += len(batch)
            _renew_lease(owner)
        farm = exports.write_farm_files()
        ExportPublisher.objects.filter(pk=1).update(
            lists_written_at=timezone.now(),
            lists_writes=F("lists_writes") + 1,
            wiki_files_written=F("wiki_files_written") + written,
        )
    finally:
        _release_lease(owner)
    return {"wikis": wikis, "wiki_files_written": written, "farm_files_changed": farm["changed"]}


def publish_wiki_now(wiki_id: str, *, as_state: str | None = None) -> dict[str, Any]:
    """Write one wiki's file at once (a lifecycle step MediaWiki must see before the next
    step) and leave the farm-wide lists to the coalesced publish. Costs the same at any
    farm size."""
    written = exports.write_wiki_files([wiki_id], as_state=as_state)
    return {"path": str(exports.wiki_file_path(wiki_id)), "written": bool(written)}


def oldest_dirty_age() -> float | None:
    """Seconds since the oldest unpublished change (the publish lag), or None."""
    candidates = [
        Wiki.objects.filter(export_dirty_since__isnull=False)
        .order_by("export_dirty_since")
        .values_list("export_dirty_since", flat=True)
        .first(),
        ExportMark.objects.order_by("id").values_list("created_at", flat=True).first(),
    ]
    oldest = min((moment for moment in candidates if moment is not None), default=None)
    return None if oldest is None else (timezone.now() - oldest).total_seconds()
