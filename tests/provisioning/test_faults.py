"""A fault at every step of create, archive, unarchive and purge; retry ends like a clean run.

Each faulted run is compared with a clean run of the same operation on a second wiki whose
id has the same length, so sizes match byte for byte once the ids are normalised.
"""

import hashlib
import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from django.conf import settings

from farm.models import AuditEvent, Wiki, WikiState
from provisioning import engine, restores, runs, services
from provisioning.demo import index_demo_pages
from provisioning.drivers import database_driver, search_driver, storage_driver
from provisioning.drivers.base import TransientError, WikiResources
from provisioning.models import Operation, OperationKind, OperationState, StepStatus
from provisioning.steps import PLANS, STEP_FUNCTIONS, wiki_resources
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db

ARCHIVE_ID_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}")
# The wiki state an operation leaves behind while it is open, and the step that ends it.
IN_PROGRESS_STATE = {
    OperationKind.CREATE: WikiState.PROVISIONING,
    OperationKind.ARCHIVE: WikiState.ARCHIVING,
    OperationKind.UNARCHIVE: WikiState.UNARCHIVING,
    OperationKind.PURGE: WikiState.PURGING,
}
FINAL_STEP_STATE = {
    "activate": WikiState.ACTIVE,
    "mark_archived": WikiState.ARCHIVED,
    "publish_read_write": WikiState.ACTIVE,
    "tombstone": WikiState.PURGED,
}
FAULT_KINDS = (
    OperationKind.CREATE,
    OperationKind.ARCHIVE,
    OperationKind.UNARCHIVE,
    OperationKind.PURGE,
)
FAULT_STEPS = [(kind, step.__name__) for kind in FAULT_KINDS for step in PLANS[kind]]


class InjectedFault(Exception):
    """What a test injects: not a DriverError, like a bug or a lost connection."""


# --- shared helpers (test_idempotency imports them) ------------------------------------


def add_content(wiki: Wiki) -> None:
    """Give an active wiki pages, uploads and search documents, so archives hold data."""
    resources = wiki_resources(wiki)
    index_demo_pages(wiki, pages=12)
    storage_driver().put_file(resources, "images/a/ab/Logo.png", b"png" * 100)
    storage_driver().put_file(resources, "images/b/bc/Map.svg", b"<svg/>")
    path = database_driver().database_path(resources)
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany(
            "INSERT INTO page VALUES (?, 0, ?, 1, '20260101000000')",
            [(n, f"Page_{n}") for n in range(2, 6)],
        )


def start_operation(kind: str, wiki_id: str, actor) -> Operation:
    """Bring a new wiki to where `kind` starts (running what comes before) and start it."""
    if kind == OperationKind.CLONE:
        return _start_clone(wiki_id, actor)
    operation = services.wiki_create(
        actor=actor, wiki_id=wiki_id, family="default", sitename="Test wiki"
    )
    if kind == OperationKind.CREATE:
        return operation
    run_pending()
    add_content(Wiki.objects.get(pk=wiki_id))
    if kind in FARM_WIDE_KINDS:
        return _start_farm_wide(kind, wiki_id, actor)
    if kind in (OperationKind.CLOSE, OperationKind.REOPEN):
        closing = services.wiki_close(actor=actor, wiki_id=wiki_id, reason="Frozen")
        if kind == OperationKind.CLOSE:
            return closing
        run_pending()
        return services.wiki_reopen(actor=actor, wiki_id=wiki_id)
    if kind == OperationKind.PURGE:
        services.wiki_archive(actor=actor, wiki_id=wiki_id)
        run_pending()
        return services.wiki_purge(actor=actor, wiki_id=wiki_id)
    operation = services.wiki_archive(actor=actor, wiki_id=wiki_id)
    if kind == OperationKind.ARCHIVE:
        return operation
    run_pending()
    request = services.unarchive_request(actor=actor, wiki_id=wiki_id, reason="needed again")
    return services.unarchive_approve(actor=actor, request_id=request.pk)


FARM_WIDE_KINDS = (OperationKind.BACKUP, OperationKind.MIGRATE, OperationKind.RESTORE)
# Re-runnable, as a farm migration must be: DDL commits as it goes, so an item that stopped
# after its statement and before its record runs the statement again.
PROBE_MIGRATION = "CREATE TABLE IF NOT EXISTS /*_*/farm_probe (probe_id INTEGER);\n"


def _start_farm_wide(kind: str, wiki_id: str, actor) -> Operation:
    """A backup or migration item's operation on its own (no run: a test retries it like any
    operation), or a restore or clone from a backup of the wiki."""
    wiki = Wiki.objects.get(pk=wiki_id)
    if kind == OperationKind.BACKUP:
        return services.start_operation(
            wiki=wiki, kind=kind, actor=actor, params={"backup_id": runs.new_run_id()}
        )
    if kind == OperationKind.MIGRATE:
        sql = Path(settings.DATA_DIR) / "probe.sql"
        sql.write_text(PROBE_MIGRATION)
        params = {
            "backup_id": runs.new_run_id(),
            "migration": "probe",
            "sql_file": str(sql),
            "sql_sha256": hashlib.sha256(sql.read_bytes()).hexdigest(),
            "backup_first": True,
        }
        return services.start_operation(wiki=wiki, kind=kind, actor=actor, params=params)
    backup_id = runs.new_run_id()
    services.start_operation(
        wiki=wiki, kind=OperationKind.BACKUP, actor=actor, params={"backup_id": backup_id}
    )
    run_pending()
    return restores.wiki_restore(actor=actor, wiki_id=wiki_id, source_id=backup_id, confirm=wiki_id)


def _start_clone(wiki_id: str, actor) -> Operation:
    """The clone is the wiki under test: a source wiki beside it, with content, is backed up
    and restored as `wiki_id`."""
    source_id = f"{wiki_id}src"
    services.wiki_create(actor=actor, wiki_id=source_id, family="default", sitename="Source")
    run_pending()
    source = Wiki.objects.get(pk=source_id)
    add_content(source)
    backup_id = runs.new_run_id()
    services.start_operation(
        wiki=source, kind=OperationKind.BACKUP, actor=actor, params={"backup_id": backup_id}
    )
    run_pending()
    return restores.wiki_clone(actor=actor, wiki_id=source_id, source_id=backup_id, new_id=wiki_id)


def resources_of(wiki_id: str) -> WikiResources:
    """The wiki's resource names, also after its registry row is gone (abandon)."""
    return WikiResources(
        wiki_id=wiki_id, database_name=f"wiki_{wiki_id}", storage_prefix=f"wikis/{wiki_id}/"
    )


def files_of(root: Path, wiki_id: str) -> list[str]:
    """Every file under the drivers' folders whose path names the wiki, temporary ones too."""
    found = []
    for area in ("databases", "storage"):
        for path in sorted((root / area).rglob("*")):
            relative = str(path.relative_to(root))
            if path.is_file() and wiki_id in relative:
                content = path.read_bytes().replace(wiki_id.encode(), b"<wiki>")
                digest = hashlib.sha256(content).hexdigest()[:12]
                # Archive files hold gzip of wiki-specific text: compare their presence only.
                found.append(relative if "archives" in relative else f"{relative} {digest}")
    return found


def resource_snapshot(root: Path, wiki_id: str) -> dict:
    """Registry state and every resource of one wiki, with its id and archive id normalised."""
    wiki = Wiki.objects.filter(pk=wiki_id).first()
    resources = resources_of(wiki_id)
    storage = storage_driver().inspect(resources)
    export_file = root / "exports" / "farm.json"
    export = json.loads(export_file.read_text()) if export_file.exists() else {"wikis": {}}
    snapshot = {
        "wiki": None if wiki is None else {"state": wiki.state, "read_only": wiki.read_only},
        "operations": sorted(
            [kind, state]
            for kind, state in Operation.objects.filter(wiki_ref=wiki_id).values_list(
                "kind", "state"
            )
        ),
        "open_operations": Operation.objects.filter(open_for_wiki=wiki_id).count(),
        "database": database_driver().inspect(resources).as_dict(),
        "storage": {"exists": storage.exists, "bytes": storage.bytes, "counts": storage.counts},
        "search": search_driver().inspect(resources).counts,
        "files": files_of(root, wiki_id),
        "export": export["wikis"].get(wiki_id),
    }
    text = json.dumps(snapshot, sort_keys=True).replace(wiki_id, "<wiki>")
    return json.loads(ARCHIVE_ID_RE.sub("<archive>", text))


def assert_nothing_left(root: Path, wiki_id: str) -> None:
    resources = resources_of(wiki_id)
    assert not database_driver().inspect(resources).exists
    storage = storage_driver().inspect(resources)
    assert not storage.exists and sum(storage.counts.values()) == 0
    assert sum(search_driver().inspect(resources).counts.values()) == 0
    assert files_of(root, wiki_id) == []


def inject_fault(monkeypatch, kind: str, step_name: str, *, after_work: bool) -> list[int]:
    """Make the step fail on its first run only; return the list its runs are counted in."""
    real_step = STEP_FUNCTIONS[kind][step_name]
    runs: list[int] = []

    def faulty_step(ctx):
        runs.append(1)
        if len(runs) == 1 and not after_work:
            raise InjectedFault(f"injected fault before {step_name} did anything")
        result = real_step(ctx)
        if len(runs) == 1:
            # The side effect happened, the engine never hears of it: a crash in between.
            raise InjectedFault(f"injected fault after {step_name} did its work")
        return result

    monkeypatch.setitem(STEP_FUNCTIONS[kind], step_name, faulty_step)
    return runs


def raise_transient(monkeypatch, kind: str, step_name: str, *, times: int | None) -> list[int]:
    """Make the step raise TransientError `times` times (None: always), then run it."""
    real_step = STEP_FUNCTIONS[kind][step_name]
    runs: list[int] = []

    def flaky_step(ctx):
        runs.append(1)
        if times is None or len(runs) <= times:
            raise TransientError(f"{step_name}: resource busy (attempt {len(runs)})")
        return real_step(ctx)

    monkeypatch.setitem(STEP_FUNCTIONS[kind], step_name, flaky_step)
    return runs


@pytest.fixture
def scheduled_retries(monkeypatch) -> list[dict]:
    """Record the retries the engine schedules instead of sending them to the broker."""
    from provisioning.tasks import run_operation_task

    calls: list[dict] = []
    monkeypatch.setattr(
        run_operation_task,
        "apply_async",
        lambda args, countdown: calls.append({"args": args, "countdown": countdown}),
    )
    return calls


# --- a fault at every step ---------------------------------------------------------------


def expected_failed_wiki_state(kind: str, step_name: str, after_work: bool) -> str:
    if after_work and step_name in FINAL_STEP_STATE:
        return FINAL_STEP_STATE[step_name]
    return IN_PROGRESS_STATE[kind]


@pytest.mark.parametrize("after_work", [False, True], ids=["before-work", "after-work"])
@pytest.mark.parametrize(
    ("kind", "step_name"), FAULT_STEPS, ids=[f"{k}-{s}" for k, s in FAULT_STEPS]
)
def test_fault_then_retry_ends_like_a_clean_run(
    kind, step_name, after_work, farm_drivers, ops_user, tmp_path, monkeypatch
):
    start_operation(kind, "bravo", ops_user)
    run_pending()
    clean_run = resource_snapshot(tmp_path, "bravo")

    operation = start_operation(kind, "alpha", ops_user)
    runs = inject_fault(monkeypatch, kind, step_name, after_work=after_work)
    run_pending()

    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert operation.failed_step == step_name
    assert "InjectedFault" in operation.error and step_name in operation.error
    failed_step = next(step for step in operation.steps if step["name"] == step_name)
    assert failed_step["status"] == StepStatus.FAILED
    assert Operation.objects.get(open_for_wiki="alpha") == operation
    wiki = Wiki.objects.get(pk="alpha")
    assert wiki.state == expected_failed_wiki_state(kind, step_name, after_work)

    services.operation_retry(actor=ops_user, operation_id=operation.pk)
    run_pending()

    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert len(runs) == 2
    assert resource_snapshot(tmp_path, "alpha") == clean_run
    if kind == OperationKind.PURGE:
        assert_nothing_left(tmp_path, "alpha")


def test_fault_is_visible_in_the_audit_log(farm_drivers, ops_user, monkeypatch):
    operation = start_operation(OperationKind.CREATE, "alpha", ops_user)
    inject_fault(monkeypatch, OperationKind.CREATE, "create_storage", after_work=False)
    run_pending()

    event = AuditEvent.objects.get(operation_id=operation.pk, action="operation.create.failed")
    assert event.after["step"] == "create_storage"
    assert "injected fault" in event.after["error"]


# --- transient errors --------------------------------------------------------------------


def test_transient_errors_are_retried_without_an_operator(
    farm_drivers, ops_user, settings, monkeypatch, scheduled_retries
):
    settings.FARM_TRANSIENT_RETRIES = 3
    operation = start_operation(OperationKind.CREATE, "alpha", ops_user)
    runs = raise_transient(monkeypatch, OperationKind.CREATE, "create_storage", times=2)

    assert engine.run_operation(operation.pk) == OperationState.PENDING
    operation.refresh_from_db()
    assert operation.run_after is not None and operation.claim_token is None
    retrying = next(step for step in operation.steps if step["name"] == "create_storage")
    assert retrying["status"] == StepStatus.RETRYING
    assert retrying["transient_errors"] == 1 and "resource busy" in retrying["error"]
    assert scheduled_retries == [
        {"args": [str(operation.pk)], "countdown": scheduled_retries[0]["countdown"]}
    ]
    assert 0 < scheduled_retries[0]["countdown"] <= 2

    run_pending()  # the broker would deliver the scheduled retries; run_pending stands in

    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert len(runs) == 3 and len(scheduled_retries) == 2
    assert operation.attempts == 3
    done = next(step for step in operation.steps if step["name"] == "create_storage")
    assert done["status"] == StepStatus.DONE and "transient_errors" not in done
    assert Wiki.objects.get(pk="alpha").state == WikiState.ACTIVE


def test_transient_errors_fail_after_the_configured_retries(
    farm_drivers, ops_user, settings, monkeypatch, scheduled_retries
):
    settings.FARM_TRANSIENT_RETRIES = 2
    operation = start_operation(OperationKind.CREATE, "alpha", ops_user)
    runs = raise_transient(monkeypatch, OperationKind.CREATE, "ensure_search_indices", times=None)

    run_pending()

    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert operation.failed_step == "ensure_search_indices"
    assert "gave up after 2 retries" in operation.error
    assert len(runs) == 3 and len(scheduled_retries) == 2
    assert Wiki.objects.get(pk="alpha").state == WikiState.PROVISIONING


# --- abandon -----------------------------------------------------------------------------


@pytest.mark.parametrize("after_work", [False, True], ids=["before-work", "after-work"])
def test_abandon_frees_the_wiki_id(farm_drivers, ops_user, tmp_path, monkeypatch, after_work):
    operation = start_operation(OperationKind.CREATE, "alpha", ops_user)
    inject_fault(monkeypatch, OperationKind.CREATE, "create_storage", after_work=after_work)
    run_pending()
    operation.refresh_from_db()
    assert operation.failed_step == "create_storage"
    assert storage_driver().inspect(resources_of("alpha")).exists is after_work

    abandon = services.operation_abandon(actor=ops_user, operation_id=operation.pk)
    run_pending()

    abandon.refresh_from_db()
    operation.refresh_from_db()
    assert abandon.state == OperationState.SUCCEEDED, abandon.error
    assert operation.state == OperationState.ABANDONED
    assert not Wiki.objects.filter(pk="alpha").exists()
    assert not Operation.objects.filter(open_for_wiki="alpha").exists()
    assert_nothing_left(tmp_path, "alpha")

    again = services.wiki_create(actor=ops_user, wiki_id="alpha", family="default", sitename="A")
    run_pending()
    again.refresh_from_db()
    assert again.state == OperationState.SUCCEEDED, again.error
    assert Wiki.objects.get(pk="alpha").state == WikiState.ACTIVE


def test_abandon_keeps_a_database_it_did_not_create(farm_drivers, ops_user, tmp_path):
    foreign = tmp_path / "databases" / "wiki_alpha.sqlite"
    foreign.parent.mkdir(parents=True)
    with closing(sqlite3.connect(foreign)) as connection, connection:
        connection.execute("CREATE TABLE precious (value TEXT)")
        connection.execute("INSERT INTO precious VALUES ('keep me')")
    content = foreign.read_bytes()

    operation = start_operation(OperationKind.CREATE, "alpha", ops_user)
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert operation.failed_step == "create_database"
    assert "already exists and was not created by this operation" in operation.error

    abandon = services.operation_abandon(actor=ops_user, operation_id=operation.pk)
    run_pending()

    abandon.refresh_from_db()
    assert abandon.state == OperationState.SUCCEEDED, abandon.error
    assert abandon.result_of("compensate_database") == {
        "skipped": "the create operation never made a database"
    }
    assert not Wiki.objects.filter(pk="alpha").exists()
    assert foreign.read_bytes() == content
    with closing(sqlite3.connect(foreign)) as connection:
        assert connection.execute("SELECT value FROM precious").fetchall() == [("keep me",)]


def test_abandon_that_crashed_after_freeing_the_id_can_be_retried(
    farm_drivers, ops_user, tmp_path, monkeypatch
):
    operation = start_operation(OperationKind.CREATE, "alpha", ops_user)
    inject_fault(monkeypatch, OperationKind.CREATE, "activate", after_work=False)
    run_pending()
    abandon = services.operation_abandon(actor=ops_user, operation_id=operation.pk)
    inject_fault(monkeypatch, OperationKind.ABANDON, "free_wiki_id", after_work=True)
    run_pending()
    abandon.refresh_from_db()
    assert abandon.state == OperationState.FAILED
    assert abandon.wiki is None  # the row went before the engine could record the step

    services.operation_retry(actor=ops_user, operation_id=abandon.pk)
    run_pending()

    abandon.refresh_from_db()
    assert abandon.state == OperationState.SUCCEEDED, abandon.error
    assert_nothing_left(tmp_path, "alpha")
    services.wiki_create(actor=ops_user, wiki_id="alpha", family="default", sitename="Again")
    run_pending()
    assert Wiki.objects.get(pk="alpha").state == WikiState.ACTIVE
