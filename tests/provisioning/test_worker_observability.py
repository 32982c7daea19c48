"""A real Celery worker with a prefork pool, as the farm runs it: its events add up over
the pool's processes on its own metrics port (prometheus_client's multiprocess mode), and
its log lines are JSON carrying the operation, wiki and step (docs/logging.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from farm.models import Family
from provisioning import services
from provisioning.drivers import database_driver, reset_drivers
from provisioning.models import Operation, OperationState

pytestmark = [
    pytest.mark.worker,
    pytest.mark.timeout(180),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WAIT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def prefork_worker(transactional_db, tmp_path):
    reset_drivers()  # the session's default drivers, which the worker builds too
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    log_path = tmp_path / "worker.log"
    environment = {
        **os.environ,
        "FARM_DATA_DIR": str(settings.DATA_DIR),
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "DJANGO_SECRET_KEY": "test",
        "DJANGO_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "FARM_WORKER_METRICS_PORT": str(port),
    }
    environment.pop("CELERY_TASK_ALWAYS_EAGER", None)
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "prefork",
        "--concurrency", "2", "-l", "info", "--hostname", f"observed-{uuid.uuid4().hex[:6]}@%h",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    yield port, log_path
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    sys.stdout.write(f"\n----- worker log -----\n{log_path.read_text(errors='replace')}\n")
    reset_drivers()


def wait_until(condition, what: str):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def ended(operation: Operation) -> Operation:
    wait_until(
        lambda: Operation.objects.filter(
            pk=operation.pk, state__in=[OperationState.SUCCEEDED, OperationState.FAILED]
        ).exists(),
        f"{operation.kind} of {operation.wiki_ref}",
    )
    operation.refresh_from_db()
    return operation


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_prefork_worker_exports_its_events_and_logs_json(prefork_worker, ops_user):
    port, log_path = prefork_worker
    good, bad = f"w{uuid.uuid4().hex[:10]}", f"w{uuid.uuid4().hex[:10]}"

    created = ended(
        services.wiki_create(actor=ops_user, wiki_id=good, family="default", sitename="G")
    )
    assert created.state == OperationState.SUCCEEDED, created.error
    # A database file the operation did not make: create_database refuses it and fails.
    database = Family.objects.get(name="default").database_name_for(bad)
    squatter = database_driver().root / f"{database}.sqlite"
    squatter.parent.mkdir(parents=True, exist_ok=True)
    squatter.write_bytes(b"")
    failing = services.wiki_create(actor=ops_user, wiki_id=bad, family="default", sitename="B")
    failed = ended(failing)
    assert failed.state == OperationState.FAILED
    assert failed.failed_step == "create_database"

    samples = wait_until(
        lambda: (
            (s := scrape(port)).get(
                (
                    "farm_operations_finished_total",
                    (("kind", "create"), ("outcome", "failed")),
                )
            )
            and s
        ),
        "the failure in the worker's metrics",
    )
    finished = samples[
        ("farm_operations_finished_total", (("kind", "create"), ("outcome", "succeeded")))
    ]
    assert finished == 1
    labels = (("kind", "create"), ("step", "create_database"))
    # The failed attempt is not a completed step.
    assert samples[("farm_operation_step_duration_seconds_count", labels)] == 1
    assert not any(name.startswith("farm_wikis") for name, _ in samples)  # the web's gauges

    lines = [
        json.loads(line)
        for line in log_path.read_text(errors="replace").splitlines()
        if line.startswith("{")
    ]
    assert any(line["logger"].startswith("celery") for line in lines), lines[:5]
    failure = next(line for line in lines if line["logger"] == "provisioning.engine")
    assert failure["level"] == "ERROR"
    assert failure["operation_id"] == str(failing.pk)
    assert failure["wiki_id"] == bad and failure["step"] == "create_database"
    assert failure["operation_kind"] == "create"
