"""Runs an operation's steps: claim, run what is not done, record each, finish or fail.

A worker claims an operation with one conditional UPDATE (PENDING -> RUNNING with a fresh
claim token). Every later write is conditional on that token, so a worker whose claim the
sweeper took over stops at its next write instead of racing the new owner.
"""

from __future__ import annotations

import logging
import random
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from farm import metrics
from farm.audit import audit
from farm.models import Wiki
from portal import logs
from provisioning.drivers.base import DriverError, TransientError
from provisioning.models import Operation, OperationState, StepStatus
from provisioning.steps import STEP_FUNCTIONS, StepContext

logger = logging.getLogger(__name__)


class LostClaim(Exception):
    """Another worker owns the operation now; this one must stop without writing."""


class StepStopped(Exception):
    """The step failed or was put off for a retry, and that is recorded: stop this run."""


def claim(operation_id) -> uuid.UUID | None:
    """Take a pending operation for this worker; None if it is not pending (done or taken)."""
    token = uuid.uuid4()
    now = timezone.now()
    claimed = (
        Operation.objects.filter(pk=operation_id, state=OperationState.PENDING)
        .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
        .update(
            state=OperationState.RUNNING,
            claim_token=token,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
        )
    )
    return token if claimed else None


@logs.scoped  # its log lines carry the operation, wiki and step; the next task's do not
def run_operation(operation_id) -> str:
    """Run an operation to its end or its next retry; return its state afterwards."""
    token = claim(operation_id)
    if token is None:
        return "not-claimed"
    operation = Operation.objects.select_related("wiki__family", "actor").get(pk=operation_id)
    logs.bind(operation_id=operation.pk, operation_kind=operation.kind, wiki_id=operation.wiki_ref)
    if operation.started_at is None:
        _save(operation, token, started_at=timezone.now())
    try:
        for step in operation.steps:
            if step["status"] != StepStatus.DONE:
                _run_step(operation, token, step)
        _succeed(operation, token)
    except StepStopped:
        return operation.state  # failed, or pending until its retry
    except LostClaim:
        logger.warning("operation %s: claim lost to another worker, stopping", operation_id)
        return "lost-claim"
    return operation.state


def _run_step(operation: Operation, token: uuid.UUID, step: dict) -> None:
    logs.bind(step=step["name"])
    step.update(status=StepStatus.RUNNING, started_at=timezone.now().isoformat(), error="")
    step["starts"] = step.get("starts", 0) + 1
    _save(operation, token)

    def checkpoint(**fields) -> None:
        step.update(fields)
        _save(operation, token)

    function = STEP_FUNCTIONS[operation.kind][step["name"]]
    context = StepContext(
        # The wiki is None only when free_wiki_id runs again, and that step reads wiki_ref.
        operation=operation,
        wiki=cast(Wiki, operation.wiki),
        step=step,
        checkpoint=checkpoint,
    )
    try:
        with _heartbeat(operation.pk, token):
            result = function(context)
    except TransientError as exc:
        _retry_later(operation, token, step, exc)
        raise StepStopped from exc  # released: stop here, the retry continues
    except Exception as exc:
        _fail(operation, token, step, exc)
        raise StepStopped from exc
    step.update(status=StepStatus.DONE, finished_at=timezone.now().isoformat(), result=result or {})
    metrics.step_done(operation.kind, step)
    step.pop("transient_errors", None)
    _save(operation, token)


@contextmanager
def _heartbeat(operation_id, token: uuid.UUID) -> Iterator[None]:
    """Keep heartbeat_at fresh while a long step (a big dump) runs, so the sweeper does
    not take over an operation whose worker is alive."""
    interval = max(1.0, settings.FARM_OPERATION_STUCK_AFTER / 3)
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval):
                Operation.objects.filter(pk=operation_id, claim_token=token).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            db_connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{operation_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _save(operation: Operation, token: uuid.UUID, **fields) -> None:
    now = timezone.now()
    updated = Operation.objects.filter(pk=operation.pk, claim_token=token).update(
        steps=operation.steps, heartbeat_at=now, **fields
    )
    if not updated:
        raise LostClaim(str(operation.pk))
    for name, value in fields.items():
        setattr(operation, name, value)


def _succeed(operation: Operation, token: uuid.UUID) -> None:
    with transaction.atomic():
        _save(
            operation,
            token,
            state=OperationState.SUCCEEDED,
            open_for_wiki=None,
            claim_token=None,
            finished_at=timezone.now(),
            error="",
            failed_step="",
        )
        audit(
            actor=None,
            action=f"operation.{operation.kind}.succeeded",
            target=operation,
            after={"wiki": operation.wiki_ref, "steps": len(operation.steps)},
            operation_id=operation.pk,
        )
        _tell_run(operation)
    metrics.operation_finished(operation.kind, "succeeded")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DriverError):
        return str(exc)
    # An unexpected error is a bug or an unmapped resource failure: keep where it came from.
    return f"{type(exc).__name__}: {exc} ({traceback.extract_tb(exc.__traceback__)[-1].name})"


def _fail(operation: Operation, token: uuid.UUID, step: dict, exc: BaseException) -> None:
    message = _describe(exc)
    logger.error("operation %s failed at %s: %s", operation.pk, step["name"], message)
    step.update(status=StepStatus.FAILED, finished_at=timezone.now().isoformat(), error=message)
    if type(exc).__name__ == "ResourceConflict":
        step["conflict"] = True
    with transaction.atomic():
        _save(
            operation,
            token,
            state=OperationState.FAILED,
            claim_token=None,
            finished_at=timezone.now(),
            error=message,
            failed_step=step["name"],
        )
        audit(
            actor=None,
            action=f"operation.{operation.kind}.failed",
            target=operation,
            after={"wiki": operation.wiki_ref, "step": step["name"], "error": message},
            operation_id=operation.pk,
        )
        _tell_run(operation)
    metrics.operation_finished(operation.kind, "failed")


def _tell_run(operation: Operation) -> None:
    """An item of a farm-wide run ended: its run records it and starts the next."""
    if operation.run_id is not None:
        from provisioning import runs

        runs.operation_ended(operation)


def _retry_later(operation: Operation, token: uuid.UUID, step: dict, exc: TransientError) -> None:
    errors = step.get("transient_errors", 0) + 1
    if errors > settings.FARM_TRANSIENT_RETRIES:
        _fail(operation, token, step, TransientError(f"{exc} (gave up after {errors - 1} retries)"))
        return
    delay = min(300.0, 2.0**errors) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
    step.update(status=StepStatus.RETRYING, error=str(exc), transient_errors=errors)
    run_after = timezone.now() + timedelta(seconds=delay)
    logger.warning(
        "operation %s step %s: %s; retry in %.1fs", operation.pk, step["name"], exc, delay
    )
    _save(
        operation,
        token,
        state=OperationState.PENDING,
        claim_token=None,
        run_after=run_after,
        enqueued_at=timezone.now(),
    )
    from provisioning.tasks import enqueue_operation

    enqueue_operation(str(operation.pk), run=operation.run_id is not None, countdown=delay)


def sweep_stuck_operations() -> list[str]:
    """Re-queue operations whose worker died or whose message was lost; return their ids."""
    from provisioning.tasks import enqueue_operation

    now = timezone.now()
    stuck_before = now - timedelta(seconds=settings.FARM_OPERATION_STUCK_AFTER)
    lost_before = now - timedelta(seconds=settings.FARM_PENDING_REQUEUE_AFTER)
    requeued: list[str] = []
    for operation in Operation.objects.filter(
        state=OperationState.RUNNING, heartbeat_at__lt=stuck_before
    ):
        released = Operation.objects.filter(
            pk=operation.pk, state=OperationState.RUNNING, claim_token=operation.claim_token
        ).update(state=OperationState.PENDING, claim_token=None, enqueued_at=now)
        if released:
            audit(
                actor=None,
                action="operation.requeued",
                target=operation,
                after={
                    "reason": "no heartbeat",
                    # heartbeat_at__lt matched it, so it is set.
                    "heartbeat_at": cast(datetime, operation.heartbeat_at).isoformat(),
                },
                operation_id=operation.pk,
            )
            requeued.append(str(operation.pk))
            metrics.operation_requeued("no_heartbeat")
    lost = Operation.objects.filter(
        state=OperationState.PENDING, enqueued_at__lt=lost_before
    ).filter(Q(run_after__isnull=True) | Q(run_after__lt=lost_before))
    for operation_id in lost.values_list("pk", flat=True):
        if Operation.objects.filter(pk=operation_id, state=OperationState.PENDING).update(
            enqueued_at=now
        ):
            requeued.append(str(operation_id))
            metrics.operation_requeued("lost_message")
    in_runs = set(
        Operation.objects.filter(pk__in=requeued, run__isnull=False).values_list("pk", flat=True)
    )
    for requeued_id in requeued:
        enqueue_operation(requeued_id, run=uuid.UUID(requeued_id) in in_runs)
    return requeued
