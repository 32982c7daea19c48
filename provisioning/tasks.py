"""Celery tasks: thin wrappers that pass ids to the engine.

acks_late is safe because every step is idempotent and claiming is a conditional UPDATE: a
redelivered message finds the operation already claimed or finished and does nothing.
"""

from celery import shared_task

from provisioning import engine


@shared_task(name="provisioning.tasks.run_operation", acks_late=True, ignore_result=True)
def run_operation_task(operation_id: str) -> str:
    return engine.run_operation(operation_id)


@shared_task(name="provisioning.tasks.sweep_stuck_operations", ignore_result=True)
def sweep_stuck_operations() -> list[str]:
    return engine.sweep_stuck_operations()
