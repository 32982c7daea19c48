"""Run one operation with the engine in a fresh process, to read its peak memory.

`python -m bench.child <operation id>` (the bench's environment variables inherited) prints
one JSON line: the engine's seconds, and VmHWM (the RSS high-water mark) once Django is up
and again after the operation.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def high_water_mark_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(operation_id: str) -> dict:
    import django

    django.setup()
    from provisioning import engine
    from provisioning.drivers import database_driver, search_driver, storage_driver
    from provisioning.models import Operation

    # Load what the engine loads lazily (drivers, their clients, the registry connection),
    # so that the baseline is a ready worker's and the rest is the operation's own.
    database_driver(), storage_driver(), search_driver()
    Operation.objects.filter(pk=operation_id).exists()
    baseline = high_water_mark_kib()
    started = time.perf_counter()
    state = engine.run_operation(operation_id)
    seconds = time.perf_counter() - started
    return {
        "state": state,
        "seconds": round(seconds, 3),
        "vmhwm_after_setup_kib": baseline,
        "vmhwm_after_operation_kib": high_water_mark_kib(),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
