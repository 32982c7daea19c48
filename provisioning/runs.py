"""Farm-wide runs: a selection of wikis, one item per wiki, worked off class by class.

A run's items are dispatched by `dispatch`, which holds the run's row lock while it counts
the items of each size class that are running and starts at most `parallelism[class]`, so
the registry, not the number of workers, bounds the load on the database servers. Smaller
classes go first: a class starts once no item of a smaller class is still queued.

Backup and migrate items each get one Operation, run by the engine like any other (claims,
idempotent steps, retries, the sweeper) on the Celery queue `runs`. When it ends the engine
calls `operation_ended`, which records the item, halts the run when failures pass its
threshold, and dispatches the next items. Inventory items are read-only inspections and
are worked off in batches by `inventory.inventory_batch` instead.
"""

from __future__ import annotations

import csv
import io
import math
import re
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from farm import policies
from farm.audit import audit
from farm.errors import InvalidInput, NotFound, OperationInProgress, WrongState
from farm.models import Family, SizeClass, Tag, Wiki, WikiState
from farm.validators import check_wiki_id
from provisioning import schema_changes
from provisioning.models import (
    ACTIVE_RUN_STATES,
    Operation,
    OperationKind,
    OperationState,
    Run,
    RunItem,
    RunItemState,
    RunKind,
    RunState,
    WikiMigration,
)

SIZE_ORDER = [
    SizeClass.SMALL,
    SizeClass.MEDIUM,
    SizeClass.LARGE,
    SizeClass.XLARGE,
    SizeClass.UNKNOWN,
]
# The wikis a run may touch: they have a live database (archived ones have none).
RUNNABLE_STATES = (WikiState.ACTIVE, WikiState.CLOSED)
MIGRATION_NAME_RULE = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
ITEM_BATCH = 1000
OUTPUT_TAIL_CHARS = 2000
SELECTION_KEYS = ("all", "family", "tag", "size_classes", "wiki_ids")


def new_run_id() -> str:
    """Sortable and safe as a folder name: backups/<run id>/<wiki id>/."""
    return f"{timezone.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


# --- checking what a caller asks for -----------------------------------------------------


def check_selection(selection: object) -> dict[str, Any]:
    if not isinstance(selection, dict) or len(selection) != 1:
        raise InvalidInput(
            f"selection must be an object with exactly one of {', '.join(SELECTION_KEYS)}",
            field="selection",
        )
    ((key, value),) = selection.items()
    if key == "all":
        if value is not True:
            raise InvalidInput("selection.all must be true", field="selection.all")
    elif key == "family":
        if not isinstance(value, str) or not Family.objects.filter(name=value).exists():
            raise InvalidInput(f"family {value!r} does not exist", field="selection.family")
    elif key == "tag":
        if not isinstance(value, str) or not Tag.objects.filter(name=value).exists():
            raise InvalidInput(f"tag {value!r} does not exist", field="selection.tag")
    elif key == "size_classes":
        _check_size_classes(value)
    elif key == "wiki_ids":
        _check_wiki_ids(value)
    else:
        raise InvalidInput(
            f"unknown selection {key!r}; use one of {', '.join(SELECTION_KEYS)}",
            field="selection",
            rule="known_selection",
        )
    return {key: value}


def _check_size_classes(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise InvalidInput("selection.size_classes must be a non-empty list", field="selection")
    unknown = [c for c in value if c not in SIZE_ORDER]
    if unknown:
        raise InvalidInput(
            f"unknown size classes {unknown}; use {', '.join(SIZE_ORDER)}",
            field="selection.size_classes",
        )


def _check_wiki_ids(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise InvalidInput("selection.wiki_ids must be a non-empty list", field="selection")
    for wiki_id in value:
        check_wiki_id(wiki_id)
    missing = set(value) - set(Wiki.objects.filter(pk__in=value).values_list("pk", flat=True))
    if missing:
        raise InvalidInput(
            f"no such wikis: {', '.join(sorted(missing)[:20])}", field="selection.wiki_ids"
        )


def selected_wikis(selection: dict[str, Any], kind: str) -> QuerySet[Wiki]:
    wikis = Wiki.objects.filter(state__in=RUNNABLE_STATES)
    ((key, value),) = selection.items()
    if key == "family":
        wikis = wikis.filter(family__name=value)
    elif key == "tag":
        wikis = wikis.filter(tags__name=value)
    elif key == "size_classes":
        wikis = wikis.filter(size_class__in=value)
    elif key == "wiki_ids":
        wikis = wikis.filter(pk__in=value)
    return wikis.order_by("pk")


def check_parallelism(parallelism: object) -> dict[str, int]:
    merged = dict(settings.FARM_RUN_PARALLELISM)
    if parallelism is None:
        parallelism = {}
    if not isinstance(parallelism, dict):
        raise InvalidInput(
            "parallelism must be an object of size class to a number", field="parallelism"
        )
    for size_class, limit in parallelism.items():
        if size_class not in SIZE_ORDER:
            raise InvalidInput(
                f"parallelism names unknown size class {size_class!r}; use {', '.join(SIZE_ORDER)}",
                field=f"parallelism.{size_class}",
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1 or limit > 1000:
            raise InvalidInput(
                f"parallelism.{size_class} must be a whole number from 1 to 1000, not {limit!r}",
                field=f"parallelism.{size_class}",
                rule="1..1000",
            )
        merged[size_class] = limit
    return {size_class: int(merged.get(size_class, 1)) for size_class in SIZE_ORDER}


def check_halt(after_failures: object, failure_share: object) -> tuple[int | None, float | None]:
    if after_failures is not None and (
        isinstance(after_failures, bool)
        or not isinstance(after_failures, int)
        or after_failures < 1
    ):
        raise InvalidInput(
            f"halt_after_failures must be a whole number of at least 1, not {after_failures!r}",
            field="halt_after_failures",
            rule=">=1",
        )
    if failure_share is not None and (
        isinstance(failure_share, bool)
        or not isinstance(failure_share, int | float)
        or not 0 < failure_share <= 1
    ):
        raise InvalidInput(
            f"halt_failure_share must be a share above 0 and at most 1, not {failure_share!r}",
            field="halt_failure_share",
            rule="0<share<=1",
        )
    return after_failures, None if failure_share is None else float(failure_share)


def check_params(kind: str, params: object) -> dict[str, Any]:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInput("params must be an object", field="params")
    if kind != RunKind.MIGRATE:
        if params:
            raise InvalidInput(f"a {kind} run takes no params", field="params")
        return {}
    name = params.get("migration")
    if not isinstance(name, str) or not _matches(MIGRATION_NAME_RULE, name):
        raise InvalidInput(
            f"params.migration must name the migration ({MIGRATION_NAME_RULE}), not {name!r}",
            field="params.migration",
            rule=MIGRATION_NAME_RULE,
        )
    has_sql, has_command = bool(params.get("sql_file")), bool(params.get("command"))
    if has_sql == has_command:
        raise InvalidInput(
            "a migration run takes exactly one of params.sql_file and params.command",
            field="params",
        )
    unknown = set(params) - {"migration", "sql_file", "command", "backup_first"}
    if unknown:
        raise InvalidInput(f"unknown params {sorted(unknown)}", field="params")
    checked: dict[str, Any] = {
        "migration": name,
        "backup_first": params.get("backup_first") is True,
    }
    if has_sql:
        checked["sql_file"], checked["sql_sha256"] = schema_changes.check_sql_file(
            params["sql_file"]
        )
    else:
        checked["command"] = schema_changes.check_command(params["command"])
    return checked


def _matches(rule: str, value: str) -> bool:
    return re.fullmatch(rule, value) is not None


def check_kind(kind: object) -> str:
    if kind not in RunKind.values:
        raise InvalidInput(
            f"run kind must be one of {', '.join(RunKind.values)}, not {kind!r}",
            field="kind",
        )
    return str(kind)


# --- preview and create ------------------------------------------------------------------


def preview(*, actor, kind: object, selection: object, parallelism: object = None) -> dict:
    """What a run would cover: wikis per size class, and how many would run at once."""
    policies.require_ops(actor, "preview farm-wide runs")
    kind = check_kind(kind)
    checked = check_selection(selection)
    limits = check_parallelism(parallelism)
    per_class = _class_counts(selected_wikis(checked, kind))
    return {
        "kind": kind,
        "selection": checked,
        "total": sum(per_class.values()),
        "per_class": per_class,
        "parallelism": limits,
        # What runs at once while a class is worked off (smaller classes first).
        "estimated_parallelism": {c: min(per_class[c], limits[c]) for c in SIZE_ORDER},
    }


def _class_counts(wikis: QuerySet[Wiki]) -> dict[str, int]:
    counts = dict(wikis.order_by().values_list("size_class").annotate(n=Count("pk")))
    return {size_class: counts.get(size_class, 0) for size_class in SIZE_ORDER}


def run_create(
    *,
    actor,
    kind: object,
    selection: object,
    parallelism: object = None,
    halt_after_failures: object = None,
    halt_failure_share: object = None,
    params: object = None,
) -> Run:
    policies.require_ops(actor, "start farm-wide runs")
    return _new_run(
        actor=actor,
        kind=kind,
        selection=selection,
        parallelism=parallelism,
        halt_after_failures=halt_after_failures,
        halt_failure_share=halt_failure_share,
        params=params,
    )


def create_run_for_worker(*, kind: str, selection: dict[str, Any]) -> Run:
    """A run the farm starts on its own schedule (beat): its actor is the worker."""
    return _new_run(actor=None, kind=kind, selection=selection)


def _new_run(
    *,
    actor,
    kind: object,
    selection: object,
    parallelism: object = None,
    halt_after_failures: object = None,
    halt_failure_share: object = None,
    params: object = None,
) -> Run:
    kind = check_kind(kind)
    checked_selection = check_selection(selection)
    limits = check_parallelism(parallelism)
    after_failures, failure_share = check_halt(halt_after_failures, halt_failure_share)
    checked_params = check_params(kind, params)
    with transaction.atomic():
        run = Run.objects.create(
            id=new_run_id(),
            kind=kind,
            selection=checked_selection,
            params=checked_params,
            parallelism=limits,
            halt_after_failures=after_failures,
            halt_failure_share=failure_share,
            created_by=actor,
        )
        _create_items(run)
        audit(
            actor=actor,
            action="run.created",
            target=run,
            after={
                "kind": kind,
                "selection": checked_selection,
                "params": checked_params,
                "parallelism": limits,
                "items": run.items.count(),
            },
        )
        transaction.on_commit(lambda: enqueue_dispatch(run.pk))
    return run


def _create_items(run: Run) -> None:
    """One item per selected wiki; for a migration, wikis that have it already are skipped."""
    applied: set[str] = set()
    if run.kind == RunKind.MIGRATE:
        applied = set(
            WikiMigration.objects.filter(name=run.params["migration"]).values_list(
                "wiki_id", flat=True
            )
        )
    rows = selected_wikis(run.selection, run.kind).values_list("pk", "size_class")
    batch: list[RunItem] = []
    for wiki_id, size_class in rows.iterator(chunk_size=ITEM_BATCH):
        skipped = wiki_id in applied
        batch.append(
            RunItem(
                run=run,
                wiki_id=wiki_id,
                wiki_ref=wiki_id,
                size_class=size_class,
                state=RunItemState.SKIPPED if skipped else RunItemState.QUEUED,
                output_tail=f"{run.params.get('migration')} is applied already" if skipped else "",
            )
        )
        if len(batch) >= ITEM_BATCH:
            RunItem.objects.bulk_create(batch)
            batch = []
    RunItem.objects.bulk_create(batch)


# --- dispatch ----------------------------------------------------------------------------


def enqueue_dispatch(run_id: str) -> None:
    from provisioning.tasks import dispatch_run_task, inventory_batch_task

    kind = Run.objects.filter(pk=run_id).values_list("kind", flat=True).first()
    if kind == RunKind.INVENTORY:
        inventory_batch_task.delay(run_id)
    else:
        dispatch_run_task.delay(run_id)


def dispatch(run_id: str) -> dict[str, Any]:
    """Start the next items the per-class limits allow; finish the run when none is left.

    The run's row lock makes dispatches of one run take turns, so two workers ending items
    at the same moment cannot both fill the same free slot."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state not in ACTIVE_RUN_STATES:
            return {"state": run.state if run else "missing"}
        if run.state == RunState.PENDING:
            Run.objects.filter(pk=run.pk).update(state=RunState.RUNNING, started_at=timezone.now())
            run.state = RunState.RUNNING
        if run.kind == RunKind.INVENTORY:
            return {"state": run.state}
        started = 0
        while (step := _dispatch_next(run)) > 0:
            started += step
        if step < 0:
            _finish(run)
    return {"state": run.state, "started": started}


def _dispatch_next(run: Run) -> int:
    """Start items of the smallest class that has queued ones: how many started (0 when
    the class is full), or -1 when nothing is queued or running any more."""
    states = _state_counts(run)
    for size_class in SIZE_ORDER:
        if not states.get((size_class, RunItemState.QUEUED), 0):
            continue
        running = states.get((size_class, RunItemState.RUNNING), 0)
        free = run.parallelism.get(size_class, 1) - running
        if free <= 0:
            return 0
        started, skipped = _start_items(run, size_class, free)
        # Skipped items freed their slots at once: look again, or the class would stall.
        return started if started or not skipped else _dispatch_next(run)
    if any(state == RunItemState.RUNNING for _, state in states):
        return 0
    return -1


def _state_counts(run: Run) -> dict[tuple[str, str], int]:
    rows = run.items.order_by().values_list("size_class", "state").annotate(n=Count("pk"))
    return {(size_class, state): n for size_class, state, n in rows}


def _start_items(run: Run, size_class: str, free: int) -> tuple[int, int]:
    """Give the next `free` queued items of a class their operation; an item whose wiki is
    busy with another operation, or no longer has a database, is skipped with the reason.
    Returns (started, skipped)."""
    started = skipped = 0
    items = run.items.filter(state=RunItemState.QUEUED, size_class=size_class).select_related(
        "wiki__family"
    )
    for item in items.order_by("wiki_ref")[:free]:
        reason = _not_runnable(item)
        if reason:
            _end_item(item, RunItemState.SKIPPED, reason)
            skipped += 1
        elif _start_item_operation(run, item):
            started += 1
        else:
            skipped += 1
    return started, skipped


def _not_runnable(item: RunItem) -> str:
    if item.wiki is None:
        return "the wiki no longer exists"
    if item.wiki.state not in RUNNABLE_STATES:
        return f"the wiki is {item.wiki.state} now"
    return ""


def _start_item_operation(run: Run, item: RunItem) -> Operation | None:
    from provisioning.services import start_operation  # services import this module

    kind = OperationKind.BACKUP if run.kind == RunKind.BACKUP else OperationKind.MIGRATE
    params: dict[str, Any] = {"backup_id": run.pk}
    if run.kind == RunKind.MIGRATE:
        params.update(run.params)
        params["backup_kind"] = "before-migration"
    assert item.wiki is not None  # _not_runnable said so  # noqa: S101
    try:
        operation = start_operation(wiki=item.wiki, kind=kind, actor=None, params=params, run=run)
    except OperationInProgress as exc:
        _end_item(item, RunItemState.SKIPPED, exc.message)
        return None
    RunItem.objects.filter(pk=item.pk).update(
        state=RunItemState.RUNNING,
        operation=operation,
        attempts=item.attempts + 1,
        started_at=timezone.now(),
        finished_at=None,
        output_tail="",
    )
    return operation


def _end_item(item: RunItem, state: str, output: str, size: int = 0) -> None:
    RunItem.objects.filter(pk=item.pk).update(
        state=state,
        finished_at=timezone.now(),
        output_tail=output[-OUTPUT_TAIL_CHARS:],
        bytes=size,
    )


def _finish(run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(state=RunState.FINISHED, finished_at=timezone.now())
    run.state = RunState.FINISHED
    audit(actor=None, action="run.finished", target=run, after=_outcome_counts(run))


# --- the engine reports an item's operation ended ----------------------------------------


def operation_ended(operation: Operation) -> None:
    """Record the item of a run's operation, halt on too many failures, start the next."""
    item = RunItem.objects.filter(operation=operation).first()
    if item is None:
        return
    succeeded = operation.state == OperationState.SUCCEEDED
    if not succeeded:
        # The item failed; the wiki must not stay blocked for its lifecycle: a retry of the
        # item starts a new operation, and every step is idempotent.
        Operation.objects.filter(pk=operation.pk).update(open_for_wiki=None)
    _end_item(
        item,
        RunItemState.SUCCEEDED if succeeded else RunItemState.FAILED,
        _output_of(operation),
        _bytes_of(operation),
    )
    run = Run.objects.get(pk=item.run_id)
    if not succeeded:
        _halt_if_over_threshold(run)
    transaction.on_commit(lambda: enqueue_dispatch(run.pk))


def _output_of(operation: Operation) -> str:
    if operation.error:
        return f"{operation.failed_step}: {operation.error}"
    tails = [
        step.get("result", {}).get("output_tail", "")
        for step in operation.steps
        if step.get("result", {}).get("output_tail")
    ]
    if tails:
        return tails[-1]
    skipped = [
        step["result"]["skipped"]
        for step in operation.steps
        if step.get("result", {}).get("skipped")
    ]
    return "; ".join(skipped)


def _bytes_of(operation: Operation) -> int:
    return int(operation.result_of("record_backup").get("bytes", 0))


def _halt_if_over_threshold(run: Run) -> None:
    failed = run.items.filter(state=RunItemState.FAILED).count()
    total = run.items.count()
    reason = ""
    if run.halt_after_failures is not None and failed >= run.halt_after_failures:
        reason = f"{failed} failures reached the threshold of {run.halt_after_failures}"
    elif run.halt_failure_share is not None and failed >= max(
        1, math.ceil(run.halt_failure_share * total)
    ):
        reason = (
            f"{failed} of {total} items failed, the threshold is a share of "
            f"{run.halt_failure_share:g}"
        )
    if not reason:
        return
    halted = Run.objects.filter(pk=run.pk, state=RunState.RUNNING).update(
        state=RunState.HALTED, halted_reason=reason
    )
    if halted:
        audit(actor=None, action="run.halted", target=run, after={"reason": reason})


# --- ops control a run -------------------------------------------------------------------


def visible_run(actor, run_id: object) -> Run:
    """Runs are farm-wide: ops and auditors see them, nobody else does."""
    from farm.roles import sees_all_wikis

    if not isinstance(run_id, str) or not actor.is_authenticated or not sees_all_wikis(actor):
        raise NotFound(f"run {run_id!r} not found", field="run_id")
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"run {run_id!r} not found", field="run_id")
    return run


def _control(actor, run_id: object, *, action: str, allowed: tuple[str, ...], to: str) -> Run:
    policies.require_ops(actor, f"{action} runs")
    run = visible_run(actor, run_id)
    moved = Run.objects.filter(pk=run.pk, state__in=allowed).update(
        state=to, **({"halted_reason": ""} if to == RunState.RUNNING else {})
    )
    if not moved:
        raise WrongState(
            f"cannot {action} run {run.pk}: it is {run.state}, {action} needs "
            f"{' or '.join(allowed)}",
            current_state=run.state,
        )
    run.refresh_from_db()
    return run


@transaction.atomic
def run_halt(*, actor, run_id: object) -> Run:
    run = _control(actor, run_id, action="halt", allowed=ACTIVE_RUN_STATES, to=RunState.HALTED)
    run.halted_reason = f"halted by {actor.get_username()}"
    Run.objects.filter(pk=run.pk).update(halted_reason=run.halted_reason)
    audit(actor=actor, action="run.halted", target=run, after={"reason": "by ops"})
    return run


@transaction.atomic
def run_resume(*, actor, run_id: object) -> Run:
    run = _control(actor, run_id, action="resume", allowed=(RunState.HALTED,), to=RunState.RUNNING)
    audit(actor=actor, action="run.resumed", target=run)
    transaction.on_commit(lambda: enqueue_dispatch(run.pk))
    return run


@transaction.atomic
def run_cancel(*, actor, run_id: object) -> Run:
    """Queued items are cancelled; running ones finish (a half-done step is never cut)."""
    run = _control(
        actor,
        run_id,
        action="cancel",
        allowed=(*ACTIVE_RUN_STATES, RunState.HALTED),
        to=RunState.CANCELLED,
    )
    cancelled = run.items.filter(state=RunItemState.QUEUED).update(
        state=RunItemState.CANCELLED, finished_at=timezone.now()
    )
    run.finished_at = timezone.now()
    Run.objects.filter(pk=run.pk).update(finished_at=run.finished_at)
    audit(actor=actor, action="run.cancelled", target=run, after={"items_cancelled": cancelled})
    return run


@transaction.atomic
def run_retry_failed(*, actor, run_id: object) -> Run:
    """Queue the failed items again (each gets a new operation); the run goes on."""
    policies.require_ops(actor, "retry runs")
    run = visible_run(actor, run_id)
    locked = Run.objects.select_for_update().get(pk=run.pk)
    if locked.state == RunState.CANCELLED:
        raise WrongState(
            f"run {run.pk} is cancelled; start a new run instead", current_state=locked.state
        )
    failed = locked.items.filter(state=RunItemState.FAILED)
    count = failed.update(state=RunItemState.QUEUED, finished_at=None)
    if not count:
        raise WrongState(f"run {run.pk} has no failed items", current_state=locked.state)
    Run.objects.filter(pk=run.pk).update(state=RunState.RUNNING, halted_reason="", finished_at=None)
    audit(actor=actor, action="run.retry_failed", target=locked, after={"items": count})
    transaction.on_commit(lambda: enqueue_dispatch(run.pk))
    run.refresh_from_db()
    return run


# --- progress and reports ----------------------------------------------------------------


def progress(run: Run) -> dict[str, Any]:
    """Items per class and state, and the totals: one GROUP BY, whatever the run's size."""
    states = _state_counts(run)
    per_class = {
        size_class: {state: states.get((size_class, state), 0) for state in RunItemState.values}
        for size_class in SIZE_ORDER
    }
    totals = {state: sum(per_class[c][state] for c in SIZE_ORDER) for state in RunItemState.values}
    total = sum(totals.values())
    done = total - totals[RunItemState.QUEUED] - totals[RunItemState.RUNNING]
    return {
        "total": total,
        "done": done,
        "totals": totals,
        "per_class": {c: v for c, v in per_class.items() if sum(v.values())},
    }


def _outcome_counts(run: Run) -> dict[str, Any]:
    totals = progress(run)["totals"]
    return {
        "succeeded": totals[RunItemState.SUCCEEDED],
        "failed": totals[RunItemState.FAILED],
        "skipped": totals[RunItemState.SKIPPED] + totals[RunItemState.CANCELLED],
    }


REPORT_COLUMNS = [
    "wiki_id",
    "size_class",
    "state",
    "attempts",
    "started_at",
    "finished_at",
    "duration_seconds",
    "bytes",
    "output_tail",
]


def report(run: Run) -> dict[str, Any]:
    """The completion report: outcome counts, bytes, elapsed time and a per-wiki log."""
    items = run.items.order_by("wiki_ref")
    end = run.finished_at or timezone.now()
    return {
        "run": run.pk,
        "kind": run.kind,
        "state": run.state,
        "selection": run.selection,
        "params": run.params,
        **_outcome_counts(run),
        "bytes": sum(items.values_list("bytes", flat=True)),
        "elapsed_seconds": (
            round((end - run.started_at).total_seconds(), 3) if run.started_at else 0.0
        ),
        "halted_reason": run.halted_reason,
        "items": [_item_row(item) for item in items.iterator(chunk_size=ITEM_BATCH)],
    }


def _item_row(item: RunItem) -> dict[str, Any]:
    return {
        "wiki_id": item.wiki_ref,
        "size_class": item.size_class,
        "state": item.state,
        "attempts": item.attempts,
        "started_at": item.started_at.isoformat() if item.started_at else None,
        "finished_at": item.finished_at.isoformat() if item.finished_at else None,
        "duration_seconds": item.duration_seconds,
        "bytes": item.bytes,
        "output_tail": item.output_tail,
    }


def report_csv(run: Run) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for item in run.items.order_by("wiki_ref").iterator(chunk_size=ITEM_BATCH):
        writer.writerow(_item_row(item))
    return out.getvalue()


def failed_items(run: Run) -> QuerySet[RunItem]:
    return run.items.filter(Q(state=RunItemState.FAILED)).order_by("wiki_ref")


def dispatch_active() -> int:
    """Dispatch every pending or running run again (beat): what a lost message stalled."""
    run_ids = list(Run.objects.filter(state__in=ACTIVE_RUN_STATES).values_list("pk", flat=True))
    for run_id in run_ids:
        enqueue_dispatch(run_id)
    return len(run_ids)
