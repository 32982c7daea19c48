"""Lifecycle timings: create (engine alone, and through the broker and the worker pool),
bulk provisioning, and archive / unarchive / purge with the engine's peak memory."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

from bench.environment import BASE_DIR
from bench.stats import summarize

POLL_SECONDS = 0.01
CREATE_TIMEOUT_SECONDS = 120


@dataclass
class BenchWikis:
    """Ids of the wikis this run made through the services: the only ones whose resources
    (databases above all) cleanup may remove."""

    run_token: str
    created: list[str] = field(default_factory=list)

    def new_id(self, kind: str) -> str:
        wiki_id = f"{kind}{self.run_token}{len(self.created):05d}"
        self.created.append(wiki_id)
        return wiki_id


def _step_seconds(steps: list[dict]) -> dict[str, float]:
    durations = {}
    for step in steps:
        if step.get("started_at") and step.get("finished_at"):
            started = datetime.fromisoformat(step["started_at"])
            finished = datetime.fromisoformat(step["finished_at"])
            durations[step["name"]] = (finished - started).total_seconds()
    return durations


def _median_steps(all_steps: list[dict[str, float]]) -> dict[str, float]:
    names = list(dict.fromkeys(name for steps in all_steps for name in steps))
    return {
        name: round(statistics.median(steps.get(name, 0.0) for steps in all_steps) * 1000, 1)
        for name in names
    }


def _create(actor, wiki_id: str):
    from provisioning import services

    return services.wiki_create(
        actor=actor, wiki_id=wiki_id, family="default", sitename=f"Bench {wiki_id}"
    )


# --- create, engine alone ----------------------------------------------------------------


def create_with_engine(actor, wikis: BenchWikis, *, samples: int, kind: str = "e") -> dict:
    """Service accept, then the engine in this process: the work without the broker."""
    from provisioning import engine
    from provisioning.models import Operation

    accept, work, steps = [], [], []
    for _ in range(samples):
        started = time.perf_counter()
        operation = _create(actor, wikis.new_id(kind))
        accepted = time.perf_counter()
        state = engine.run_operation(operation.pk)
        finished = time.perf_counter()
        if state != "succeeded":
            error = Operation.objects.get(pk=operation.pk).error
            raise RuntimeError(f"create {operation.wiki_ref} ended {state}: {error}")
        accept.append(accepted - started)
        work.append(finished - accepted)
        steps.append(_step_seconds(Operation.objects.get(pk=operation.pk).steps))
    return {
        "what": "services.wiki_create, then engine.run_operation in the bench process",
        "accept": summarize(accept, unit="ms", digits=1),
        "engine": summarize(work),
        "accept_to_active": summarize([a + w for a, w in zip(accept, work, strict=True)]),
        "median_step_ms": _median_steps(steps),
    }


# --- create through the API, the broker and the worker pool ------------------------------


def api_client(actor):
    """Django's test client logged in as `actor`, or None when the API is not routed."""
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("api:wiki-list")
    except NoReverseMatch:
        return None
    client = Client(HTTP_HOST="localhost")
    client.force_login(actor)
    return client


def _accept_through_api(client, wiki_id: str) -> None:
    response = client.post(
        "/api/v1/wikis/",
        {"id": wiki_id, "family": "default", "sitename": f"Bench {wiki_id}"},
        content_type="application/json",
    )
    if response.status_code != 202:
        raise RuntimeError(
            f"POST /api/v1/wikis/ answered {response.status_code}: {response.content[:300]}"
        )


def _wait_active(wiki_id: str) -> tuple[float, list[dict]]:
    """Wall-clock time the wiki became active (the worker's own timestamp), and the steps
    once the operation has recorded its last one."""
    from farm.models import Wiki
    from provisioning.models import Operation, OperationState

    deadline = time.monotonic() + CREATE_TIMEOUT_SECONDS
    operations = Operation.objects.filter(wiki_ref=wiki_id)
    while time.monotonic() < deadline:
        operation = operations.values("state", "steps", "failed_step", "error").first()
        if operation and operation["state"] == OperationState.FAILED:
            raise RuntimeError(
                f"create {wiki_id} failed at {operation['failed_step']}: {operation['error']}"
            )
        if operation and operation["state"] == OperationState.SUCCEEDED:
            activated = Wiki.objects.values_list("activated_at", flat=True).get(pk=wiki_id)
            return activated.timestamp(), operation["steps"]
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"create {wiki_id} not active after {CREATE_TIMEOUT_SECONDS}s")


def create_with_worker(actor, wikis: BenchWikis, *, samples: int) -> dict:
    """From the request (API POST, else the service) to `activated_at` written by the worker."""
    client = api_client(actor)
    latencies, accepts, queue_waits, steps = [], [], [], []
    for _ in range(samples):
        wiki_id = wikis.new_id("c")
        started = time.time()
        if client is not None:
            _accept_through_api(client, wiki_id)
        else:
            _create(actor, wiki_id)
        accepts.append(time.time() - started)
        active_at, wiki_steps = _wait_active(wiki_id)
        latencies.append(active_at - started)
        first_step = datetime.fromisoformat(wiki_steps[0]["started_at"]).timestamp()
        queue_waits.append(first_step - started - accepts[-1])
        steps.append(_step_seconds(wiki_steps))
    return {
        "what": (
            "POST /api/v1/wikis/ (Django test client, as ops)"
            if client is not None
            else "services.wiki_create (the API is not routed)"
        )
        + " -> Redis/filesystem broker -> celery prefork worker -> activated_at",
        "accept": summarize(accepts, unit="ms", digits=1),
        "queue_wait": summarize(queue_waits, unit="ms", digits=1),
        "accept_to_active": summarize(latencies),
        "median_step_ms": _median_steps(steps),
    }


# --- bulk --------------------------------------------------------------------------------


def bulk_create(actor, wikis: BenchWikis, *, count: int) -> dict:
    """Accept `count` creates as fast as the service goes while the pool works them off;
    then wait for the coalesced publish to settle and count its farm-wide rewrites."""
    from farm.models import Wiki, WikiState
    from provisioning.models import Operation, OperationState

    writes_before = _publisher_state()["lists_writes"]
    farm_writes: set[float] = set()  # lists_written_at values seen while polling
    ids = []
    started = time.time()
    for _ in range(count):
        wiki_id = wikis.new_id("b")
        _create(actor, wiki_id)
        ids.append(wiki_id)
    submitted = time.time() - started
    deadline = time.monotonic() + max(CREATE_TIMEOUT_SECONDS, count * 2.0)
    bulk = Wiki.objects.filter(pk__in=ids)
    while bulk.filter(state=WikiState.ACTIVE).count() < count:
        if Operation.objects.filter(wiki_ref__in=ids, state=OperationState.FAILED).exists():
            failed = Operation.objects.filter(wiki_ref__in=ids, state=OperationState.FAILED)[0]
            raise RuntimeError(f"bulk create {failed.wiki_ref} failed: {failed.error}")
        if time.monotonic() > deadline:
            raise RuntimeError("bulk provisioning timed out")
        _note_farm_write(farm_writes)
        time.sleep(0.25)
    activated = sorted(t.timestamp() for t in bulk.values_list("activated_at", flat=True))
    steps = [
        _step_seconds(s)
        for s in Operation.objects.filter(wiki_ref__in=ids).values_list("steps", flat=True)
    ]
    report = _bulk_report(count, started, submitted, activated, steps)
    report["export_publishing"] = _burst_publishing(
        started, activated[-1], writes_before, farm_writes
    )
    return report


def _publisher_state() -> dict:
    from farm.models import ExportPublisher

    ExportPublisher.objects.get_or_create(pk=1)
    return ExportPublisher.objects.filter(pk=1).values(
        "requested_at", "lease_until", "lists_written_at", "lists_writes"
    )[0]


def _note_farm_write(seen: set[float]) -> None:
    written = _publisher_state()["lists_written_at"]
    if written is not None:
        seen.add(written.timestamp())


PUBLISH_SETTLE_TIMEOUT_SECONDS = 300


def _burst_publishing(
    started: float, last_active: float, writes_before: int, farm_writes: set[float]
) -> dict:
    """Wait until nothing is dirty and no publish is requested or running, then: how many
    times the farm-wide files were rewritten for the burst, against the publish windows it
    spanned (DESIGN: at most one rewrite per window however many changes arrived)."""
    import math

    from farm import publishing
    from farm.models import Wiki

    window = publishing.publish_window()
    deadline = time.monotonic() + PUBLISH_SETTLE_TIMEOUT_SECONDS
    while True:
        state = _publisher_state()
        dirty = Wiki.objects.filter(export_dirty_since__isnull=False).count()
        if not dirty and state["requested_at"] is None and state["lease_until"] is None:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"export publishing did not settle in {PUBLISH_SETTLE_TIMEOUT_SECONDS}s "
                f"({dirty} wikis dirty, publisher {state})"
            )
        _note_farm_write(farm_writes)
        time.sleep(0.1)
    settled = time.time()
    _note_farm_write(farm_writes)
    rewrites = state["lists_writes"] - writes_before
    last_write = state["lists_written_at"].timestamp() if rewrites else started
    burst = last_active - started
    until_last_write = last_write - started
    windows = max(1, math.ceil(until_last_write / window))
    seen = sorted(t for t in farm_writes if t >= started)
    gaps = [b - a for a, b in zip([started, *seen], seen, strict=False)]
    return {
        "what": "ExportPublisher.lists_writes (farm-wide rewrites) from the first accept until "
        "the publish settled, against the publish windows spanned",
        "publish_window_s": window,
        "lists_writes_delta": rewrites,
        "burst_seconds": round(burst, 2),
        "windows_in_burst": round(burst / window, 1),
        "seconds_to_last_farm_write": round(until_last_write, 2),
        "windows_to_last_farm_write": windows,
        "rewrites_per_window": round(rewrites / windows, 3),
        "last_farm_write_after_last_active_s": round(last_write - last_active, 2),
        "settled_after_last_active_s": round(settled - last_active, 2),
        # Sampled every 0.25 s while the burst ran: how stale the farm-wide lists got.
        "farm_writes_seen": len(seen),
        "farm_writes_at_s": [round(t - started, 1) for t in seen],
        "max_seconds_without_farm_write": round(max(gaps), 2) if gaps else None,
    }


def _bulk_report(
    count: int, started: float, submitted: float, activated: list[float], steps: list[dict]
) -> dict:
    elapsed = activated[-1] - started
    tenth = max(2, count // 10)
    names = dict.fromkeys(name for s in steps for name in s)
    step_totals = {name: sum(s.get(name, 0.0) for s in steps) for name in names}
    busy = sum(step_totals.values())
    return {
        "wikis": count,
        "accept_seconds": round(submitted, 2),
        "accepts_per_second": round(count / submitted, 1),
        "seconds": round(elapsed, 2),
        "wikis_per_second": round(count / elapsed, 2),
        # Early and late in the run: a rate that falls is work growing with the registry.
        "first_tenth_wikis_per_second": round(
            (tenth - 1) / (activated[tenth - 1] - activated[0]), 2
        ),
        "last_tenth_wikis_per_second": round((tenth - 1) / (activated[-1] - activated[-tenth]), 2),
        "step_share": {name: round(total / busy, 3) for name, total in step_totals.items()},
        "median_step_ms": _median_steps(steps),
    }


def drop_wiki_databases(wiki_ids: list[str]) -> int:
    """Drop the database of each of these wikis (the bench's own), through the driver, by
    the name derived from its registry row; return how many existed."""
    from concurrent.futures import ThreadPoolExecutor

    from farm.models import Wiki, WikiState
    from provisioning.drivers import database_driver
    from provisioning.steps import wiki_resources

    wikis = Wiki.objects.filter(pk__in=wiki_ids).exclude(state=WikiState.PURGED)
    resources = [wiki_resources(wiki) for wiki in wikis.select_related("family")]
    driver = database_driver()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(driver.purge, resources))
    return sum(1 for result in results if result["existed"])


# --- archive, unarchive, purge in a child process ----------------------------------------


def run_in_child(operation_id) -> dict:
    """The engine in a fresh interpreter: its wall time and VmHWM (KiB).

    VmHWM, not wait4()'s ru_maxrss: Linux carries the high-water mark of the forked copy of
    this (bigger) process across exec into ru_maxrss, which would hide the child's own."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.child", str(operation_id)],
        cwd=BASE_DIR,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
    )
    output, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"bench.child {operation_id} exited with {process.returncode}")
    report = json.loads(output.decode().strip().splitlines()[-1])
    report["process_seconds"] = round(time.perf_counter() - started, 3)
    report["operation_peak_above_setup_kib"] = (
        report["vmhwm_after_operation_kib"] - report["vmhwm_after_setup_kib"]
    )
    return report


def _finished(operation, report: dict) -> dict:
    from provisioning.models import Operation

    operation = Operation.objects.get(pk=operation.pk)
    if operation.state != "succeeded":
        raise RuntimeError(
            f"{operation.kind} {operation.wiki_ref} {operation.state}: {operation.error}"
        )
    report["median_step_ms"] = {
        k: round(v * 1000, 1) for k, v in _step_seconds(operation.steps).items()
    }
    return report


def archive_cycle(actor, wikis: BenchWikis, db_params: dict, *, pages: int, revisions: int) -> dict:
    """Create a wiki, fill it, then archive and unarchive it, each in a child engine."""
    from bench.fixtures import fill_wiki_database
    from farm.models import Wiki
    from provisioning import engine, services
    from provisioning.demo import index_demo_pages

    wiki_id = wikis.new_id("a")
    engine.run_operation(_create(actor, wiki_id).pk)
    wiki = Wiki.objects.get(pk=wiki_id)
    started = time.perf_counter()
    rows = fill_wiki_database(db_params, wiki.database_name, pages=pages, revisions=revisions)
    documents = index_demo_pages(wiki, pages=pages)
    generated = time.perf_counter() - started

    operation = services.wiki_archive(actor=actor, wiki_id=wiki_id)
    archive = _finished(operation, run_in_child(operation.pk))
    manifest = Wiki.objects.get(pk=wiki_id).archive_manifest
    request = services.unarchive_request(actor=actor, wiki_id=wiki_id, reason="bench")
    operation = services.unarchive_approve(actor=actor, request_id=request.pk)
    unarchive = _finished(operation, run_in_child(operation.pk))
    return {
        "wiki_id": wiki_id,
        "pages": pages,
        "revisions": revisions,
        "rows": sum(rows.values()),
        "search_documents": documents["documents"],
        "generate_seconds": round(generated, 2),
        "archive_files": {
            "database_bytes": manifest["database"].get("bytes"),
            "search_bytes": manifest["search"].get("bytes"),
        },
        "archive": archive,
        "unarchive": unarchive,
    }


def purge_in_child(actor, wiki_id: str) -> dict:
    """Purge an active wiki (typed confirmation) in a child engine; the receipt's check."""
    from farm.models import Wiki
    from provisioning import services

    operation = services.wiki_purge(actor=actor, wiki_id=wiki_id, confirm=wiki_id)
    report = _finished(operation, run_in_child(operation.pk))
    receipt = Wiki.objects.get(pk=wiki_id).purge_receipt
    report["verification"] = receipt["verification"]
    report["removed"] = receipt["removed"]
    return report
