"""Celery tasks: thin wrappers that pass ids to the engine.

acks_late is safe because every step is idempotent and claiming is a conditional UPDATE: a
redelivered message finds the operation already claimed or finished and does nothing.
"""

from celery import shared_task

from provisioning import engine

RUNS_QUEUE = "runs"


def enqueue_operation(operation_id: str, *, run: bool, countdown: float | None = None) -> None:
    """Send an operation to a worker: a farm-wide run's on its own queue, so that a run
    never keeps a self-service create waiting."""
    run_operation_task.apply_async(
        args=[operation_id], countdown=countdown, **({"queue": RUNS_QUEUE} if run else {})
    )


@shared_task(name="provisioning.tasks.run_operation", acks_late=True, ignore_result=True)
def run_operation_task(operation_id: str) -> str:
    return engine.run_operation(operation_id)


@shared_task(name="provisioning.tasks.sweep_stuck_operations", ignore_result=True)
def sweep_stuck_operations() -> list[str]:
    return engine.sweep_stuck_operations()


@shared_task(name="provisioning.tasks.dispatch_run", acks_late=True, ignore_result=True)
def dispatch_run_task(run_id: str) -> dict:
    from provisioning import runs

    return runs.dispatch(run_id)


@shared_task(name="provisioning.tasks.dispatch_active_runs", ignore_result=True)
def dispatch_active_runs() -> int:
    """Beat's safety net: a dispatch message lost with a killed worker stalls no run."""
    from provisioning import runs

    return runs.dispatch_active()


@shared_task(name="provisioning.tasks.inventory_batch", acks_late=True, ignore_result=True)
def inventory_batch_task(run_id: str) -> dict:
    from provisioning import inventory

    return inventory.inventory_batch(run_id)


@shared_task(name="provisioning.tasks.scheduled_inventory", ignore_result=True)
def scheduled_inventory() -> str:
    from provisioning import inventory

    return inventory.start_scheduled_inventory()
