"""Claiming and the sweeper: one worker per operation, lost workers and lost messages."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from farm.models import AuditEvent, Wiki, WikiState
from provisioning import engine, services, tasks
from provisioning.models import Operation, OperationState, StepStatus
from provisioning.steps import STEP_FUNCTIONS
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def requeued(monkeypatch) -> list[str]:
    """Operation ids the sweeper sends to the broker, recorded instead of sent."""
    sent: list[str] = []
    monkeypatch.setattr(
        tasks.run_operation_task, "apply_async", lambda args, **options: sent.append(args[0])
    )
    return sent


@pytest.fixture
def create_operation(farm_drivers, ops_user) -> Operation:
    return services.wiki_create(actor=ops_user, wiki_id="alpha", family="default", sitename="A")


def row(operation: Operation) -> dict:
    return Operation.objects.filter(pk=operation.pk).values().get()


def test_stuck_running_operation_is_requeued(create_operation, settings, requeued):
    settings.FARM_OPERATION_STUCK_AFTER = 60
    token = engine.claim(create_operation.pk)
    Operation.objects.filter(pk=create_operation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=61)
    )

    assert engine.sweep_stuck_operations() == [str(create_operation.pk)]

    released = row(create_operation)
    assert released["state"] == OperationState.PENDING
    assert released["claim_token"] is None and released["claim_token"] != token
    assert requeued == [str(create_operation.pk)]
    event = AuditEvent.objects.get(action="operation.requeued")
    assert event.after["reason"] == "no heartbeat"
    run_pending()
    assert row(create_operation)["state"] == OperationState.SUCCEEDED


def test_running_operation_with_a_fresh_heartbeat_is_left_alone(
    create_operation, settings, requeued
):
    settings.FARM_OPERATION_STUCK_AFTER = 60
    token = engine.claim(create_operation.pk)
    Operation.objects.filter(pk=create_operation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=30)
    )

    assert engine.sweep_stuck_operations() == []

    assert row(create_operation)["state"] == OperationState.RUNNING
    assert row(create_operation)["claim_token"] == token
    assert requeued == []


def test_pending_operation_whose_message_was_lost_is_requeued(create_operation, settings, requeued):
    settings.FARM_PENDING_REQUEUE_AFTER = 60
    long_ago = timezone.now() - timedelta(seconds=120)
    Operation.objects.filter(pk=create_operation.pk).update(enqueued_at=long_ago)

    assert engine.sweep_stuck_operations() == [str(create_operation.pk)]

    assert row(create_operation)["enqueued_at"] > long_ago
    assert requeued == [str(create_operation.pk)]
    # Re-queued once: the next sweep finds it recently enqueued.
    assert engine.sweep_stuck_operations() == []


def test_pending_operations_recently_enqueued_or_waiting_to_retry_are_left_alone(
    create_operation, settings, requeued
):
    settings.FARM_PENDING_REQUEUE_AFTER = 60
    assert engine.sweep_stuck_operations() == []  # just enqueued

    Operation.objects.filter(pk=create_operation.pk).update(
        enqueued_at=timezone.now() - timedelta(seconds=120),
        run_after=timezone.now() + timedelta(seconds=30),  # a transient retry's backoff
    )
    assert engine.sweep_stuck_operations() == []
    assert requeued == []


def test_a_claimed_operation_cannot_be_claimed_again(create_operation):
    first = engine.claim(create_operation.pk)

    assert first is not None
    assert engine.claim(create_operation.pk) is None
    assert row(create_operation)["claim_token"] == first
    assert row(create_operation)["attempts"] == 1


def test_a_second_worker_does_not_run_a_claimed_operation(create_operation):
    token = engine.claim(create_operation.pk)
    before = row(create_operation)

    assert engine.run_operation(create_operation.pk) == "not-claimed"

    assert row(create_operation) == before
    assert row(create_operation)["claim_token"] == token
    assert Wiki.objects.get(pk="alpha").state == WikiState.PROVISIONING


def test_an_operation_waiting_for_its_retry_is_not_claimed_early(create_operation):
    Operation.objects.filter(pk=create_operation.pk).update(
        run_after=timezone.now() + timedelta(seconds=30)
    )
    assert engine.claim(create_operation.pk) is None
    assert row(create_operation)["state"] == OperationState.PENDING


def test_a_worker_whose_claim_was_taken_over_cannot_write(create_operation):
    token = engine.claim(create_operation.pk)
    operation = Operation.objects.select_related("wiki__family").get(pk=create_operation.pk)
    # The sweeper released the operation and another worker claimed it.
    Operation.objects.filter(pk=operation.pk).update(claim_token=uuid.uuid4())
    taken_over = row(create_operation)
    events = AuditEvent.objects.count()

    operation.steps[0]["status"] = StepStatus.DONE
    with pytest.raises(engine.LostClaim):
        engine._save(operation, token)
    with pytest.raises(engine.LostClaim):
        engine._succeed(operation, token)
    try:
        raise RuntimeError("the step failed late")
    except RuntimeError as late_failure:
        with pytest.raises(engine.LostClaim):
            engine._fail(operation, token, operation.steps[1], late_failure)

    assert row(create_operation) == taken_over
    assert AuditEvent.objects.count() == events


def test_a_worker_that_loses_its_claim_mid_step_stops_at_its_next_write(
    create_operation, monkeypatch
):
    real_step = STEP_FUNCTIONS["create"]["create_storage"]
    new_owner = uuid.uuid4()
    runs: list[int] = []

    def slow_step(ctx):
        result = real_step(ctx)
        runs.append(1)
        if len(runs) == 1:
            # While this step ran, the sweeper gave the operation to another worker.
            Operation.objects.filter(pk=ctx.operation.pk).update(claim_token=new_owner)
        return result

    monkeypatch.setitem(STEP_FUNCTIONS["create"], "create_storage", slow_step)

    assert engine.run_operation(create_operation.pk) == "lost-claim"

    stopped = row(create_operation)
    assert stopped["state"] == OperationState.RUNNING and stopped["claim_token"] == new_owner
    statuses = {step["name"]: step["status"] for step in stopped["steps"]}
    assert statuses["create_storage"] == StepStatus.RUNNING  # its result was never recorded
    assert statuses["ensure_search_indices"] == StepStatus.PENDING
    assert (
        not AuditEvent.objects.filter(operation_id=create_operation.pk)
        .exclude(action="operation.create.requested")
        .exists()
    )
    assert Wiki.objects.get(pk="alpha").state == WikiState.PROVISIONING

    # The new owner (released here as the sweeper would) finishes, repeating the step.
    Operation.objects.filter(pk=create_operation.pk).update(
        state=OperationState.PENDING, claim_token=None
    )
    run_pending()
    assert row(create_operation)["state"] == OperationState.SUCCEEDED
    assert Wiki.objects.get(pk="alpha").state == WikiState.ACTIVE
    assert len(runs) == 2


def test_running_a_succeeded_operation_changes_nothing(create_operation):
    run_pending()
    finished = row(create_operation)
    events = AuditEvent.objects.count()
    assert finished["state"] == OperationState.SUCCEEDED

    assert engine.run_operation(create_operation.pk) == "not-claimed"

    assert row(create_operation) == finished
    assert AuditEvent.objects.count() == events
