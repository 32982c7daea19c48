"""The portal's Prometheus metrics (docs/metrics.md; django-prometheus adds HTTP and DB).

Two kinds, kept apart on purpose:

- Registry gauges (queue depth, wikis by state, publish lag) are read from the registry at
  scrape time by `RegistryCollector`, in the web process only: every process sees the same
  database, so one exporter is right and nothing needs sharing between processes.
- Events (an operation finished, a step took so long, the sweeper re-queued) happen in
  Celery workers. They are prometheus_client counters and histograms; with
  PROMETHEUS_MULTIPROC_DIR set (prometheus_client's multiprocess mode) each process writes
  them to files there, and an exporter reading that folder adds up every process's values:
  `/metrics` of the web, and `start_worker_exporter` (FARM_WORKER_METRICS_PORT) of a worker.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

# --- events, counted where they happen (workers) -----------------------------------------

OPERATIONS_FINISHED = Counter(
    "farm_operations_finished",
    "Operations that ended, by kind and outcome (succeeded, failed).",
    ["kind", "outcome"],
)
STEP_SECONDS = Histogram(
    "farm_operation_step_duration_seconds",
    "Wall time of each completed step, by operation kind and step.",
    ["kind", "step"],
    # From a registry write to an archive of a large wiki.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
OPERATIONS_REQUEUED = Counter(
    "farm_operations_requeued",
    "Operations the sweeper re-queued: no_heartbeat (worker presumed dead), lost_message.",
    ["reason"],
)


def operation_finished(kind: str, outcome: str) -> None:
    _safely(lambda: OPERATIONS_FINISHED.labels(kind, outcome).inc())


def step_done(kind: str, step: dict) -> None:
    """Observe a step that just completed, from the times the engine recorded on it."""

    def observe() -> None:
        started = datetime.fromisoformat(step["started_at"])
        finished = datetime.fromisoformat(step["finished_at"])
        STEP_SECONDS.labels(kind, step["name"]).observe((finished - started).total_seconds())

    _safely(observe)


def operation_requeued(reason: str) -> None:
    _safely(lambda: OPERATIONS_REQUEUED.labels(reason).inc())


def _safely(record) -> None:
    # A metric never fails an operation (a full disk under the multiprocess folder, say).
    try:
        record()
    except Exception:
        logger.exception("metrics: could not record an event")


# --- registry gauges, read at scrape time (web) ------------------------------------------


class RegistryCollector:
    """Gauges computed from the registry on each scrape, a few aggregate queries."""

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._families())
        except DatabaseError:
            logger.exception("metrics: the registry could not be read")
            families = []
        up = GaugeMetricFamily("farm_registry_up", "1 if the registry answered this scrape.")
        up.add_metric([], 1 if families else 0)
        yield up
        yield from families

    def _families(self) -> Iterable[Metric]:
        from farm import publishing
        from farm.models import Family, Wiki
        from provisioning.models import OPEN_STATES, Operation, OperationKind, OperationState

        open_operations = GaugeMetricFamily(
            "farm_operations_open",
            "Operations not yet ended, by state (pending and running: the queue; failed: "
            "waiting for a retry or an abandon) and kind.",
            labels=["state", "kind"],
        )
        counts = {
            (row["state"], row["kind"]): row["n"]
            for row in Operation.objects.open()
            .order_by()
            .values("state", "kind")
            .annotate(n=Count("pk"))
        }
        for state in OPEN_STATES:
            for kind in OperationKind.values:
                open_operations.add_metric([state, kind], counts.get((state, kind), 0))
        yield open_operations

        now = timezone.now()
        oldest = (
            Operation.objects.filter(state=OperationState.PENDING)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .aggregate(oldest=Min("created_at"))["oldest"]
        )
        age = GaugeMetricFamily(
            "farm_operation_oldest_pending_age_seconds",
            "Seconds since the oldest pending operation that may run now was requested "
            "(0 when none is waiting; one waiting out a retry delay does not count).",
        )
        age.add_metric([], (now - oldest).total_seconds() if oldest else 0.0)
        yield age

        families = dict(Family.objects.values_list("pk", "name"))
        wikis = GaugeMetricFamily(
            "farm_wikis",
            "Wikis by state, family and size class (purged wikis are tombstones).",
            labels=["state", "family", "size_class"],
        )
        for row in (
            Wiki.objects.order_by()
            .values("state", "family_id", "size_class")
            .annotate(n=Count("pk"))
        ):
            family = families.get(row["family_id"], str(row["family_id"]))
            wikis.add_metric([row["state"], family, row["size_class"]], row["n"])
        yield wikis

        lag = GaugeMetricFamily(
            "farm_export_publish_lag_seconds",
            "Seconds since the oldest change not yet in the export files (0 when all are).",
        )
        lag.add_metric([], publishing.oldest_dirty_age() or 0.0)
        yield lag

        yield from _run_families()


def _run_families() -> Iterator[GaugeMetricFamily]:
    """Runs by kind and state (a halted run is what ops must look at), and the items of
    the runs not yet ended by state and size class: a run's progress."""
    from provisioning.models import ACTIVE_RUN_STATES, Run, RunItem, RunState

    runs = GaugeMetricFamily(
        "farm_runs", "Farm-wide runs by kind and state.", labels=["kind", "state"]
    )
    for kind, state, count in (
        Run.objects.order_by().values_list("kind", "state").annotate(n=Count("pk"))
    ):
        runs.add_metric([kind, state], count)
    yield runs
    items = GaugeMetricFamily(
        "farm_run_items",
        "Items of the runs that have not ended (pending, running, halted) by state and class.",
        labels=["run", "kind", "state", "size_class"],
    )
    open_runs = (*ACTIVE_RUN_STATES, RunState.HALTED)
    rows = (
        RunItem.objects.filter(run__state__in=open_runs)
        .order_by()
        .values_list("run_id", "run__kind", "state", "size_class")
        .annotate(n=Count("pk"))
    )
    for run_id, kind, state, size_class, count in rows:
        items.add_metric([run_id, kind, state, size_class], count)
    yield items


# --- exposition --------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _ThisProcess:
    """The default registry (this process's metrics), as one collector of another."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def event_registry() -> CollectorRegistry:
    """Every process's events in multiprocess mode, else this process's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    return registry


def _authorized(request: HttpRequest) -> bool:
    token = settings.FARM_METRICS_TOKEN
    if not token:
        return False
    supplied = request.headers.get("Authorization", "")
    return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """/metrics: open with DEBUG and no token set; otherwise `Authorization: Bearer
    <FARM_METRICS_TOKEN>`, and refused in production while no token is configured."""
    if settings.FARM_METRICS_TOKEN or not settings.DEBUG:
        if not settings.FARM_METRICS_TOKEN:
            return HttpResponse(
                "Metrics are off: set FARM_METRICS_TOKEN and scrape with it as a bearer token.\n",
                status=403,
                content_type="text/plain",
            )
        if not _authorized(request):
            response = HttpResponse(
                "A bearer token is required.\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    registry = event_registry()
    registry.register(RegistryCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def start_worker_exporter(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - a pod's port
    """Serve this worker's events (all its pool processes) on a port of its own. Called in
    the worker's main process before the pool starts (portal/celery.py)."""
    if multiprocess_dir() is None:
        logger.warning(
            "FARM_WORKER_METRICS_PORT without PROMETHEUS_MULTIPROC_DIR: only the worker's "
            "main process is exported, not its pool's (docs/metrics.md)"
        )
    start_http_server(port, addr=addr, registry=event_registry())
    logger.info("worker metrics on %s:%s", addr, port)


def mark_process_dead(pid: int) -> None:
    """A pool process ended: drop its live gauges (counters and histograms stay summed)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
