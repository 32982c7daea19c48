"""Farm-wide runs on real Celery workers with the wikis' databases on the real MariaDB.

The registry's promise is checked from the registry's own record: every item's running
interval (started_at to finished_at), so "at most N of a class at once" is proved over the
whole run, not sampled. Storage and search are the session's embedded drivers, which the
worker processes build too (same FARM_DATA_DIR).
"""

import os
import uuid

import MySQLdb
import pytest
from django.conf import settings

from farm.models import Wiki
from provisioning import runs, services
from provisioning.drivers import database_driver, reset_drivers
from provisioning.models import (
    Operation,
    OperationState,
    Run,
    RunItemState,
    RunState,
    StepStatus,
    WikiBackup,
    WikiMigration,
)
from provisioning.steps import wiki_resources
from tests.provisioning.helpers import run_pending
from tests.provisioning.workers import wait_for
from tests.services import port_open, service_unavailable

pytestmark = [
    pytest.mark.worker,
    pytest.mark.mariadb,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MARIADB_URL = os.environ.get("TEST_FARM_DB_URL", "mysql://root:@127.0.0.1:3306/")
RUN_WAIT_SECONDS = 120


@pytest.fixture
def mariadb_wikis(settings, ops_user):
    """Make wikis whose databases are on MariaDB (created in this process by the engine);
    drop every database made, whatever the test did."""
    if not port_open("127.0.0.1", 3306):
        service_unavailable("MariaDB is not listening on 127.0.0.1:3306")
    settings.FARM_DRIVERS = {
        **settings.FARM_DRIVERS,
        "database": {
            "class": "provisioning.drivers.mariadb.MariaDBDatabaseDriver",
            "options": {
                "url": MARIADB_URL,
                "clusters": {},
                "schema_sql": settings.FARM_SCHEMA_SQL,
                "table_prefix": "",
                "post_create_hook": "",
            },
        },
    }
    reset_drivers()
    made: list[str] = []

    def make(count: int) -> list[str]:
        prefix = f"r{uuid.uuid4().hex[:6]}"
        ids = [f"{prefix}{n:02d}" for n in range(count)]
        for wiki_id in ids:
            services.wiki_create(
                actor=ops_user, wiki_id=wiki_id, family="default", sitename=wiki_id
            )
        made.extend(ids)
        run_pending()
        assert Wiki.objects.filter(pk__in=ids, state="active").count() == count
        return ids

    yield make
    for wiki in Wiki.objects.filter(pk__in=made):
        database_driver().purge(wiki_resources(wiki))
    reset_drivers()


def worker_env() -> dict[str, str]:
    return {"FARM_DB_URL": MARIADB_URL, "FARM_SCHEMA_SQL": str(settings.FARM_SCHEMA_SQL)}


def wait_for_run(run: Run, workers) -> Run:
    import time

    deadline = time.monotonic() + RUN_WAIT_SECONDS
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state not in (RunState.PENDING, RunState.RUNNING):
            return run
        time.sleep(0.2)
    logs = "\n".join(f"----- {w.name} -----\n{w.log()[-3000:]}" for w in workers)
    raise AssertionError(f"run {run.pk} still {run.state}: {runs.progress(run)}\n{logs}")


def max_overlap(intervals: list[tuple]) -> int:
    """The most intervals (start, end) that share an instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:  # an end sorts before a start at the same instant (-1 < 1)
        running += change
        peak = max(peak, running)
    return peak


def test_backup_run_over_three_classes_keeps_per_class_parallelism(
    start_worker, mariadb_wikis, ops_user
):
    ids = mariadb_wikis(30)
    classes = {"small": ids[:10], "medium": ids[10:20], "large": ids[20:]}
    for size_class, members in classes.items():
        Wiki.objects.filter(pk__in=members).update(size_class=size_class)
    limits = {"small": 3, "medium": 2, "large": 1}
    workers = [start_worker(**worker_env()) for _ in range(4)]
    run = runs.run_create(
        actor=ops_user, kind="backup", selection={"wiki_ids": ids}, parallelism=limits
    )
    wait_for_run(run, workers)
    assert run.state == RunState.FINISHED, runs.report(run)
    items = list(run.items.all())
    assert {item.state for item in items} == {RunItemState.SUCCEEDED}
    for size_class, limit in limits.items():
        intervals = [
            (item.started_at, item.finished_at) for item in items if item.size_class == size_class
        ]
        assert max_overlap(intervals) <= limit, size_class
    # Smaller classes first: no large item started before every small one had started.
    first_large = min(i.started_at for i in items if i.size_class == "large")
    assert all(i.started_at <= first_large for i in items if i.size_class == "small")
    assert WikiBackup.objects.filter(backup_id=run.pk).count() == 30
    assert Operation.objects.filter(run=run).count() == 30  # one operation per wiki


def test_killed_worker_mid_run_resumes_without_doubles_or_gaps(
    start_worker, mariadb_wikis, ops_user
):
    ids = mariadb_wikis(5)
    first = start_worker(**worker_env())
    run = runs.run_create(
        actor=ops_user,
        kind="migrate",
        selection={"wiki_ids": ids},
        parallelism={"unknown": 1},
        # A slow command keeps the item's operation mid-step when the worker is killed.
        params={"migration": "slow-noop", "command": "sleep 2", "backup_first": True},
    )

    def an_item_is_mid_command():
        return any(
            step["name"] == "apply_migration" and step["status"] == StepStatus.RUNNING
            for steps in Operation.objects.filter(run=run).values_list("steps", flat=True)
            for step in steps
        )

    wait_for(
        lambda: (
            run.items.filter(state=RunItemState.SUCCEEDED).count() >= 1 and an_item_is_mid_command()
        ),
        "an item mid-command after one succeeded",
        [first],
    )
    first.kill()
    second = start_worker(FARM_OPERATION_STUCK_AFTER="2", **worker_env())
    wait_for_run(run, [first, second])
    assert run.state == RunState.FINISHED, runs.report(run)
    assert sorted(run.items.values_list("state", flat=True)) == [RunItemState.SUCCEEDED] * 5
    for wiki_id in ids:
        # One operation, one backup, one migration record per wiki: none twice, none skipped.
        assert Operation.objects.filter(run=run, wiki_ref=wiki_id).count() == 1
        assert WikiBackup.objects.filter(backup_id=run.pk, wiki_id=wiki_id).count() == 1
        assert WikiMigration.objects.filter(name="slow-noop", wiki_id=wiki_id).count() == 1
    resumed = [op for op in Operation.objects.filter(run=run) if op.attempts > 1]
    assert len(resumed) == 1 and resumed[0].state == OperationState.SUCCEEDED


def _drop_page_table(database: str) -> None:
    connection = MySQLdb.connect(host="127.0.0.1", user="root", passwd="", db=database)
    try:
        connection.cursor().execute("RENAME TABLE page TO page_moved_away")
    finally:
        connection.close()


def _put_page_table_back(database: str) -> None:
    connection = MySQLdb.connect(host="127.0.0.1", user="root", passwd="", db=database)
    try:
        connection.cursor().execute("RENAME TABLE page_moved_away TO page")
    finally:
        connection.close()


def _columns(database: str, table: str) -> set[str]:
    connection = MySQLdb.connect(host="127.0.0.1", user="root", passwd="")
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table),
        )
        return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()


def test_migration_run_fails_alone_retries_and_a_rerun_skips(
    start_worker, mariadb_wikis, ops_user, tmp_path
):
    ids = mariadb_wikis(20)
    broken = Wiki.objects.get(pk=ids[7])
    _drop_page_table(broken.database_name)
    sql = tmp_path / "page_flag.sql"
    sql.write_text("ALTER TABLE /*_*/page ADD COLUMN page_farm_flag INT NOT NULL DEFAULT 0;\n")
    params = {"migration": "page-farm-flag", "sql_file": str(sql)}
    workers = [start_worker(**worker_env()) for _ in range(2)]
    run = runs.run_create(
        actor=ops_user, kind="migrate", selection={"wiki_ids": ids}, params=params
    )
    wait_for_run(run, workers)
    failed = list(run.items.filter(state=RunItemState.FAILED).values_list("wiki_ref", flat=True))
    assert failed == [broken.pk]
    assert "page" in run.items.get(wiki_ref=broken.pk).output_tail
    assert run.items.filter(state=RunItemState.SUCCEEDED).count() == 19

    _put_page_table_back(broken.database_name)
    runs.run_retry_failed(actor=ops_user, run_id=run.pk)
    wait_for_run(run, workers)
    assert set(run.items.values_list("state", flat=True)) == {RunItemState.SUCCEEDED}
    for wiki in Wiki.objects.filter(pk__in=ids):
        assert "page_farm_flag" in _columns(wiki.database_name, "page")

    rerun = runs.run_create(
        actor=ops_user, kind="migrate", selection={"wiki_ids": ids}, params=params
    )
    wait_for_run(rerun, workers)
    assert set(rerun.items.values_list("state", flat=True)) == {RunItemState.SKIPPED}
    assert not Operation.objects.filter(run=rerun).exists()


def test_halt_threshold_stops_a_run_on_workers(start_worker, mariadb_wikis, ops_user, tmp_path):
    ids = mariadb_wikis(6)
    for wiki in Wiki.objects.filter(pk__in=ids[:3]):
        _drop_page_table(wiki.database_name)
    sql = tmp_path / "flag.sql"
    sql.write_text("ALTER TABLE /*_*/page ADD COLUMN page_other_flag INT NOT NULL DEFAULT 0;\n")
    worker = start_worker(**worker_env())
    run = runs.run_create(
        actor=ops_user,
        kind="migrate",
        selection={"wiki_ids": ids},
        parallelism={"unknown": 1},
        halt_after_failures=2,
        params={"migration": "other-flag", "sql_file": str(sql)},
    )
    wait_for_run(run, [worker])
    assert run.state == RunState.HALTED
    assert run.items.filter(state=RunItemState.FAILED).count() == 2
    assert run.items.filter(state=RunItemState.QUEUED).count() == 4
