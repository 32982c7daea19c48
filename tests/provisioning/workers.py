"""Real Celery worker processes for tests: started on the session's registry, broker folder
and drivers, killed or stopped, their logs shown when a test fails."""

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

from provisioning.drivers import reset_drivers

WAIT_SECONDS = 30


def registry_url() -> str:
    """The URL of this session's test registry, SQLite file or MariaDB test database."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    server = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}"
    return f"mysql://{db['USER']}:{db.get('PASSWORD') or ''}@{server}/{db['NAME']}"


class Worker:
    """`celery worker -B --pool solo` in its own process group (beat runs as a child)."""

    def __init__(self, name: str, log_dir, extra_env: dict[str, str]):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        environment = {
            **os.environ,
            # settings.DATA_DIR, not the variable: it is the folder this session really uses.
            "FARM_DATA_DIR": str(settings.DATA_DIR),
            "DATABASE_URL": registry_url(),
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
