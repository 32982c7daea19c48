"""A long step keeps its operation's heartbeat fresh, so the sweeper leaves a live worker alone."""

import time

import pytest

from farm.models import Wiki
from provisioning import engine, services, steps
from provisioning.models import Operation, OperationState

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


def test_a_long_step_is_not_taken_over_by_the_sweeper(
    farm_drivers, ops_user, settings, monkeypatch
):
    settings.FARM_OPERATION_STUCK_AFTER = 3  # heartbeat every second
    swept_during_step = []
    real_step = steps.STEP_FUNCTIONS["create"]["run_post_create_hook"]

    def slow_hook(ctx):
        time.sleep(4)  # longer than FARM_OPERATION_STUCK_AFTER
        swept_during_step.extend(engine.sweep_stuck_operations())
        return real_step(ctx)

    monkeypatch.setitem(steps.STEP_FUNCTIONS["create"], "run_post_create_hook", slow_hook)
    monkeypatch.setattr("provisioning.tasks.run_operation_task.apply_async", lambda *a, **k: None)
    operation = services.wiki_create(
        actor=ops_user, wiki_id="alpha", family="default", sitename="A"
    )

    assert engine.run_operation(operation.pk) == OperationState.SUCCEEDED
    assert swept_during_step == []
    assert Operation.objects.get(pk=operation.pk).attempts == 1
    assert Wiki.objects.get(pk="alpha").state == "active"
