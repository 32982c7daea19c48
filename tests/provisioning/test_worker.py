"""A real Celery worker (with beat) runs the lifecycle, and survives being killed mid-step.

The worker is a separate process on the same registry file, broker folder and drivers as
this test session, so the test commits its data (transactional_db) and polls the registry.
"""

import pytest

from farm.models import AuditEvent, Wiki, WikiState
from provisioning import services
from provisioning.demo import index_demo_pages
from provisioning.drivers import database_driver, search_driver, storage_driver
from provisioning.models import Operation, OperationState, StepStatus
from provisioning.steps import wiki_resources
from tests.provisioning.workers import Worker, new_wiki_id, wait_for

pytestmark = [
    pytest.mark.worker,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FINISHED = (OperationState.SUCCEEDED, OperationState.FAILED)


def finished(operation: Operation, *workers: Worker) -> Operation:
    """Wait for the operation to end; it must have succeeded."""
    wait_for(
        lambda: Operation.objects.filter(pk=operation.pk, state__in=FINISHED).exists(),
        f"{operation.kind} of {operation.wiki_ref}",
        list(workers),
    )
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return operation


def step_status(operation: Operation, name: str) -> str:
    steps = Operation.objects.filter(pk=operation.pk).values_list("steps", flat=True).get()
    return next(step["status"] for step in steps if step["name"] == name)


def test_worker_runs_the_whole_lifecycle(start_worker, ops_user):
    worker = start_worker()
    wiki_id = new_wiki_id()

    finished(
        services.wiki_create(actor=ops_user, wiki_id=wiki_id, family="default", sitename="W"),
        worker,
    )
    wiki = Wiki.objects.get(pk=wiki_id)
    assert wiki.state == WikiState.ACTIVE
    resources = wiki_resources(wiki)
    rows = database_driver().inspect(resources).details["table_rows"]
    index_demo_pages(wiki, pages=25)
    storage_driver().put_file(resources, "images/a/ab/Logo.png", b"png" * 10)

    finished(services.wiki_archive(actor=ops_user, wiki_id=wiki_id), worker)
    assert Wiki.objects.get(pk=wiki_id).state == WikiState.ARCHIVED
    assert not database_driver().inspect(resources).exists
    assert sum(search_driver().inspect(resources).counts.values()) == 0

    request = services.unarchive_request(actor=ops_user, wiki_id=wiki_id, reason="needed")
    finished(services.unarchive_approve(actor=ops_user, request_id=request.pk), worker)
    assert Wiki.objects.get(pk=wiki_id).state == WikiState.ACTIVE
    assert database_driver().inspect(resources).details["table_rows"] == rows
    assert search_driver().inspect(resources).counts["wikipage"] == 25
    assert storage_driver().inspect(resources).counts["objects"] == 2  # marker and logo

    finished(services.wiki_purge(actor=ops_user, wiki_id=wiki_id, confirm=wiki_id), worker)
    wiki.refresh_from_db()
    assert wiki.state == WikiState.PURGED
    assert not database_driver().inspect(resources).exists
    storage = storage_driver().inspect(resources)
    assert not storage.exists and sum(storage.counts.values()) == 0
    assert sum(search_driver().inspect(resources).counts.values()) == 0
    assert wiki.purge_receipt["removed"]["search"]["documents_deleted"] == 25
    assert set(Operation.objects.filter(wiki_ref=wiki_id).values_list("state", flat=True)) == {
        OperationState.SUCCEEDED
    }


def test_operation_of_a_killed_worker_is_requeued_and_completes(start_worker, ops_user):
    # The post-create hook keeps the first worker busy long enough to kill it mid-step.
    first = start_worker(FARM_POST_CREATE_HOOK="sleep 5")
    wiki_id = new_wiki_id()
    operation = services.wiki_create(
        actor=ops_user, wiki_id=wiki_id, family="default", sitename="K"
    )
    wait_for(
        lambda: step_status(operation, "run_post_create_hook") == StepStatus.RUNNING,
        "the post-create hook to start",
        [first],
    )

    first.kill()
    operation.refresh_from_db()
    assert operation.state == OperationState.RUNNING  # nobody will finish it: stuck

    second = start_worker(FARM_OPERATION_STUCK_AFTER="2")
    finished(operation, first, second)

    assert Wiki.objects.get(pk=wiki_id).state == WikiState.ACTIVE
    steps = {step["name"]: step for step in operation.steps}
    assert steps["create_database"]["starts"] == 1  # the database was created once
    assert steps["create_database"]["result"]["created"] is True
    assert steps["run_post_create_hook"]["starts"] == 2
    assert operation.attempts == 2
    assert AuditEvent.objects.filter(
        operation_id=operation.pk, action="operation.requeued"
    ).exists()
    assert database_driver().inspect(wiki_resources(Wiki.objects.get(pk=wiki_id))).exists
