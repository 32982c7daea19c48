"""A real Celery worker (with beat) runs the lifecycle, and survives being killed mid-step.

The worker is a separate process on the same registry file, broker folder and drivers as
this test session, so the test commits its data (transactional_db) and polls the registry.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connection

from farm.models import AuditEvent, Wiki, WikiState
from provisioning import services
from provisioning.demo import index_demo_pages
from provisioning.drivers import database_driver, reset_drivers, search_driver, storage_driver
from provisioning.models import Operation, OperationState, StepStatus
from provisioning.steps import wiki_resources

pytestmark = [
    pytest.mark.worker,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WAIT_SECONDS = 30
FINISHED = (OperationState.SUCCEEDED, OperationState.FAILED)


class Worker:
    """`celery worker -B --pool solo` in its own process group (beat runs as a child)."""

    def __init__(self, name: str, log_dir, extra_env: dict[str, str]):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        environment = {
            **os.environ,
            # settings.DATA_DIR, not the variable: it is the folder this session really uses.
            "FARM_DATA_DIR": str(settings.DATA_DIR),
            "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
            "DJANGO_SECRET_KEY": "test",
            "FARM_SWEEP_INTERVAL": "1",
            **extra_env,
        }
        environment.pop("CELERY_TASK_ALWAYS_EAGER", None)
        command = [
            sys.executable, "-m", "celery", "-A", "portal", "worker", "-B",
            "--pool", "solo", "-l", "info", "--hostname", f"{name}@%h",
            "--schedule-filename", str(log_dir / f"{name}-beat-schedule"),
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the worker, its beat and whatever step command it is running."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(transactional_db, tmp_path) -> Callable[..., Worker]:
    """Start workers on the session's default drivers; stop them and show their logs."""
    reset_drivers()  # the session's default FARM_DRIVERS, which the worker builds too
    workers: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        worker = Worker(f"worker{len(workers) + 1}", tmp_path, extra_env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
        # Shown by pytest only when the test failed.
        sys.stdout.write(f"\n----- {worker.name} log -----\n{worker.log()}\n")
    reset_drivers()


def new_wiki_id() -> str:
    """Unique per run: the drivers' folders belong to the whole session, maybe to earlier."""
    return f"w{uuid.uuid4().hex[:12]}"


def wait_for(condition: Callable[[], object], what: str, workers: list[Worker]):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    logs = "\n".join(f"----- {w.name} -----\n{w.log()[-4000:]}" for w in workers)
    raise AssertionError(f"timed out after {WAIT_SECONDS}s waiting for {what}\n{logs}")


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
