"""The bench's private world, set up before Django starts: a temporary data dir (registry,
storage, search, exports), the MariaDB driver on the real MediaWiki schema, a broker of its
own, and the Celery worker pool as a real subprocess. Also what the machine is."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
MEDIAWIKI_SCHEMA = Path("/usr/share/mediawiki/maintenance/tables-generated.sql")
REDIS_URL = "redis://127.0.0.1:6379"
# Celery's and kombu's keys in the bench's Redis database; nothing else is ever deleted.
# The queues are the settings' CELERY_TASK_QUEUES: celery, exports, runs.
BROKER_KEY_PATTERNS = ("celery", "celery*", "exports*", "runs*", "_kombu*", "unacked*")
WORKER_READY_TIMEOUT_SECONDS = 60
WORKER_STOP_TIMEOUT_SECONDS = 30


@dataclass
class BenchEnvironment:
    data_dir: Path
    db_url: str
    schema_sql: Path
    broker_url: str
    redis_db: int | None
    extra_env: dict[str, str] = field(default_factory=dict)

    def apply(self) -> None:
        """Export the settings' variables; must run before django.setup()."""
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "portal.settings",
                "FARM_DATA_DIR": str(self.data_dir),
                "FARM_DB_URL": self.db_url,
                "FARM_SCHEMA_SQL": str(self.schema_sql),
                "CELERY_BROKER_URL": self.broker_url,
                # The bench creates far more than 30 wikis an hour through the API.
                "FARM_API_CREATE_RATE": "",
                # No MediaWiki serves the bench's wikis: no requests to drain before a drop.
                "FARM_OFFLINE_DRAIN_SECONDS": "0",
                "LOG_LEVEL": "WARNING",
                **self.extra_env,
            }
        )
        for name in ("DATABASE_URL", "CELERY_TASK_ALWAYS_EAGER", "OPENSEARCH_URL"):
            os.environ.pop(name, None)  # the bench's registry, a real worker, local search

    def db_params(self) -> dict:
        parts = urlsplit(self.db_url)
        return {
            "host": parts.hostname,
            "port": parts.port or 3306,
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
        }

    def remove(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.redis_db is not None:
            delete_broker_keys(self.redis_db)


def prepare(*, db_url: str, broker: str, schema_sql: Path) -> BenchEnvironment:
    if not schema_sql.is_file():
        raise SystemExit(
            f"{schema_sql} is missing: install Debian's mediawiki package "
            "(apt-get install -y mediawiki, or .ci/install-mediawiki.sh)"
        )
    data_dir = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    if broker == "redis":
        redis_db = empty_redis_db()
        broker_url = f"{REDIS_URL}/{redis_db}"
    else:
        redis_db, broker_url = None, "filesystem://localhost//"
    return BenchEnvironment(
        data_dir=data_dir,
        db_url=db_url,
        schema_sql=schema_sql,
        broker_url=broker_url,
        redis_db=redis_db,
    )


def empty_redis_db() -> int:
    """A Redis database number nobody uses right now (the highest empty one)."""
    import redis

    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        try:
            if client.dbsize() == 0:
                return number
        finally:
            client.close()
    raise SystemExit("no empty Redis database among 1-15; use --broker filesystem")


def delete_broker_keys(number: int) -> None:
    import redis

    client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
    try:
        for pattern in BROKER_KEY_PATTERNS:
            keys = list(client.scan_iter(match=pattern))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


# --- the worker pool ---------------------------------------------------------------------


class WorkerPool:
    """`celery -A portal worker --pool prefork --concurrency N` in its own process group."""

    def __init__(
        self, *, concurrency: int, log_path: Path, run_token: str, queues: str = "", name="bench"
    ) -> None:
        self.hostname = f"{name}-{run_token}@%h"
        self.log_path = log_path
        command = [
            sys.executable, "-m", "celery", "-A", "portal", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency),
            "--loglevel", "warning", "--hostname", self.hostname,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if queues:
            command += ["-Q", queues]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                env=dict(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> float:
        """Seconds until the worker answers a ping (it consumes from then on)."""
        from portal.celery import app

        started = time.monotonic()
        name = self.hostname.replace("%h", platform.node())
        while time.monotonic() - started < WORKER_READY_TIMEOUT_SECONDS:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}: {self.log()}")
            if app.control.ping(destination=[name], timeout=0.5):
                return time.monotonic() - started
        raise RuntimeError(f"worker not ready in {WORKER_READY_TIMEOUT_SECONDS}s: {self.log()}")

    def stop(self) -> None:
        """Warm shutdown (finish the running tasks), then by force; only this group."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=WORKER_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=WORKER_STOP_TIMEOUT_SECONDS)
        self._signal(signal.SIGKILL)  # forked pool children that outlived the parent

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


# --- the machine -------------------------------------------------------------------------


def machine_info(db_params: dict) -> dict:
    import MySQLdb

    connection = MySQLdb.connect(**db_params)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT VERSION()")
        mariadb_version = cursor.fetchone()[0]
    finally:
        connection.close()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_meminfo_kib("MemTotal") / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mariadb": mariadb_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def source_revision() -> dict:
    """The commit measured, and how many tracked files differ from it (None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(BASE_DIR), "rev-parse", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(BASE_DIR), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "changed_tracked_files": None}
    return {"commit": commit, "changed_tracked_files": len(changed)}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class LoadSampler:
    """The machine's load while the bench runs: load average and CPU time used by others."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._cpu_start = _cpu_jiffies()
        self._self_start = _own_cpu_seconds()
        self._wall_start = time.monotonic()

    def sample(self) -> None:
        self.samples.append(os.getloadavg()[0])

    def report(self) -> dict:
        busy, total = (
            end - start for end, start in zip(_cpu_jiffies(), self._cpu_start, strict=True)
        )
        cores = os.cpu_count() or 1
        wall = time.monotonic() - self._wall_start
        return {
            "load_average_1m": {
                "min": round(min(self.samples, default=0.0), 2),
                "max": round(max(self.samples, default=0.0), 2),
                "mean": round(sum(self.samples) / max(1, len(self.samples)), 2),
            },
            "machine_cpu_busy_fraction": round(busy / total, 3) if total else None,
            "bench_process_cpu_seconds": round(_own_cpu_seconds() - self._self_start, 1),
            "wall_seconds": round(wall, 1),
            "cores": cores,
        }


def _cpu_jiffies() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system + usage.children_user + usage.children_system
