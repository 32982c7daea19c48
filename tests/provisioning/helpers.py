"""Running operations inside a test without a broker: the engine, called directly."""

from farm import publishing
from provisioning import engine
from provisioning.models import Operation, OperationState


def run_pending(max_rounds: int = 50) -> list[Operation]:
    """Run every pending operation (transient retries included) until none is left, then
    publish the exports as the coalesced publish task would."""
    ran = []
    for _ in range(max_rounds):
        pending = list(Operation.objects.filter(state=OperationState.PENDING))
        if not pending:
            # What the publish task would do a window later: the exports catch up.
            publishing.publish(respect_window=False)
            return ran
        Operation.objects.filter(pk__in=[op.pk for op in pending]).update(run_after=None)
        for operation in pending:
            engine.run_operation(operation.pk)
            ran.append(operation)
    raise AssertionError("operations still pending after max_rounds")


def run_runs(max_rounds: int = 500) -> None:
    """Work off every active farm-wide run as the `runs` workers would: dispatch, run the
    operations it started, again, until no run is pending or running."""
    from provisioning import inventory, runs
    from provisioning.models import ACTIVE_RUN_STATES, Run, RunKind

    for _ in range(max_rounds):
        active = list(Run.objects.filter(state__in=ACTIVE_RUN_STATES))
        if not active:
            return
        for run in active:
            if run.kind == RunKind.INVENTORY:
                inventory.inventory_batch(run.pk)
            else:
                runs.dispatch(run.pk)
        run_pending()
    raise AssertionError("runs still active after max_rounds")
