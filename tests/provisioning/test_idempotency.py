"""Every step of every operation kind, run twice in a row, leaves what one run leaves.

The engine may run a step again after a crash, a lost message or a retry; this is the
property that makes that safe. Each test drives a real wiki to just before the step (the
engine runs everything up to it), calls the step function twice directly, and compares the
registry and every resource after the first and after the second call.
"""

import hashlib
import io
from pathlib import Path

import pytest

from farm.models import AuditEvent, Wiki, WikiState
from provisioning import services
from provisioning.drivers import search_driver
from provisioning.models import Operation, OperationKind, OperationState, UnarchiveRequest
from provisioning.steps import PLANS, STEP_FUNCTIONS, StepContext
from tests.provisioning.helpers import run_pending
from tests.provisioning.test_faults import (
    resource_snapshot,
    resources_of,
    start_operation,
)

pytestmark = pytest.mark.django_db

ALL_STEPS = [(kind, step.__name__) for kind, plan in PLANS.items() for step in plan]
FINAL_WIKI_STATE = {
    OperationKind.CREATE: WikiState.ACTIVE,
    OperationKind.CLOSE: WikiState.CLOSED,
    OperationKind.REOPEN: WikiState.ACTIVE,
    OperationKind.ARCHIVE: WikiState.ARCHIVED,
    OperationKind.UNARCHIVE: WikiState.ACTIVE,
    OperationKind.PURGE: WikiState.PURGED,
    OperationKind.ABANDON: None,  # the row is deleted: the id is free again
    OperationKind.BACKUP: WikiState.ACTIVE,
    OperationKind.MIGRATE: WikiState.ACTIVE,
    OperationKind.RESTORE: WikiState.ACTIVE,
    OperationKind.CLONE: WikiState.ACTIVE,
}


class StopBeforeStep(Exception):
    """Stops the engine at the step under test, with every step before it done."""


def start_abandon(wiki_id: str, actor, monkeypatch) -> Operation:
    """A create that made every resource and failed just before `activate`, abandoned."""
    with monkeypatch.context() as patch:
        patch.setitem(STEP_FUNCTIONS[OperationKind.CREATE], "activate", stop_here)
        create = start_operation(OperationKind.CREATE, wiki_id, actor)
        run_pending()
    return services.operation_abandon(actor=actor, operation_id=create.pk)


def stop_here(ctx):
    raise StopBeforeStep(ctx.step["name"])


def operation_before_step(kind: str, step_name: str, actor, monkeypatch) -> Operation:
    if kind == OperationKind.ABANDON:
        operation = start_abandon("alpha", actor, monkeypatch)
    else:
        operation = start_operation(kind, "alpha", actor)
    with monkeypatch.context() as patch:
        patch.setitem(STEP_FUNCTIONS[kind], step_name, stop_here)
        run_pending()
    operation = Operation.objects.select_related("wiki__family", "actor").get(pk=operation.pk)
    assert operation.failed_step == step_name, operation.error
    return operation


def direct_context(operation: Operation, step_name: str, checkpoints: list) -> StepContext:
    """What the engine hands a step; checkpoints are recorded in the registry, as the engine's
    are, without the engine's claim and heartbeat."""
    step = next(step for step in operation.steps if step["name"] == step_name)

    def checkpoint(**fields):
        checkpoints.append(fields)
        step.update(fields)
        Operation.objects.filter(pk=operation.pk).update(steps=operation.steps)

    return StepContext(operation=operation, wiki=operation.wiki, step=step, checkpoint=checkpoint)


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file the drivers and exports wrote (the shared search store aside)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith("search.sqlite3")
    }


def search_export_digest(wiki_id: str) -> str:
    sink = io.BytesIO()
    search_driver().archive(resources_of(wiki_id), sink)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def everything(root: Path) -> dict:
    return {
        "resources": resource_snapshot(root, "alpha"),
        "files": file_digests(root),
        "search_documents": search_export_digest("alpha"),
        "rows": {
            model.__name__: model.objects.count()
            for model in (Wiki, Operation, UnarchiveRequest, AuditEvent)
        },
    }


@pytest.mark.parametrize(("kind", "step_name"), ALL_STEPS, ids=[f"{k}-{s}" for k, s in ALL_STEPS])
def test_step_run_twice_equals_step_run_once(
    kind, step_name, farm_drivers, ops_user, tmp_path, monkeypatch
):
    operation = operation_before_step(kind, step_name, ops_user, monkeypatch)
    step_function = STEP_FUNCTIONS[kind][step_name]
    checkpoints: list[dict] = []
    context = direct_context(operation, step_name, checkpoints)

    step_function(context)
    once = everything(tmp_path)
    step_function(context)
    twice = everything(tmp_path)

    assert twice == once
    # A step records that it touched its resource each time; remove_config keeps the values
    # it is about to delete once, on its first run, and reads them back on the second.
    assert checkpoints in ([], [{"touched": True}] * 2) or (
        step_name == "remove_config" and len(checkpoints) == 1
    )

    # The engine then finishes the operation from that step, which runs it a third time.
    services.operation_retry(actor=ops_user, operation_id=operation.pk)
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    wiki_state = Wiki.objects.filter(pk="alpha").values_list("state", flat=True).first()
    assert wiki_state == FINAL_WIKI_STATE[kind]
