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
