"""Farm-wide runs on the embedded default: inventory, backup, halt and retry, migration,
restore in place and as a new id. Workers are the engine called in-process (helpers); the
MariaDB and real-worker versions are tests/provisioning/test_runs_workers.py."""

import csv
import io
import sqlite3

import pytest

from farm.errors import InvalidInput, NotAllowed
from farm.models import SizeClass, Wiki
from provisioning import inventory, restores, runs, services, sinks
from provisioning.demo import index_demo_pages
from provisioning.drivers import database_driver, search_driver, storage_driver
from provisioning.models import (
    Operation,
    OperationState,
    Run,
    RunItemState,
    RunState,
    WikiBackup,
    WikiMigration,
)
from provisioning.steps import wiki_resources
from tests.provisioning.helpers import run_pending, run_runs

pytestmark = pytest.mark.django_db


def make_wikis(actor, ids):
    for wiki_id in ids:
        services.wiki_create(actor=actor, wiki_id=wiki_id, family="default", sitename=wiki_id)
    run_pending()
    return list(Wiki.objects.filter(pk__in=ids))


def add_pages(wiki, pages, stamp="20261201120000"):
    """Pages with a revision each in the demo schema (the inventory counts them)."""
    path = database_driver().database_path(wiki_resources(wiki))
    with sqlite3.connect(path) as connection:
        start = connection.execute("SELECT COALESCE(MAX(page_id), 0) FROM page").fetchone()[0]
        ids = range(start + 1, start + 1 + pages)
        connection.executemany(
            "INSERT INTO page VALUES (?, 0, ?, ?, ?)", [(n, f"P{n}", n, stamp) for n in ids]
        )
        connection.executemany(
            "INSERT INTO revision VALUES (?, ?, ?, 'edit')", [(n, n, stamp) for n in ids]
        )


def test_inventory_gives_size_classes_from_pages(farm_drivers, ops_user, settings):
    settings.FARM_SIZE_CLASS_LIMITS = {
        "small": {"pages": 5, "bytes": 10**9},
        "medium": {"pages": 20, "bytes": 10 * 10**9},
        "large": {"pages": 50, "bytes": 0},
    }
    pages = {"tiny": 1, "mid": 10, "big": 30, "huge": 60}
    for wiki in make_wikis(ops_user, list(pages)):
        add_pages(wiki, pages[wiki.pk])
    run = runs.run_create(actor=ops_user, kind="inventory", selection={"all": True})
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.FINISHED
    classes = dict(Wiki.objects.values_list("pk", "size_class"))
    assert classes == {"tiny": "small", "mid": "medium", "big": "large", "huge": "xlarge"}
    mid = Wiki.objects.get(pk="mid")
    seen = database_driver().inspect(wiki_resources(mid))
    assert mid.usage.pages == seen.counts["pages"] >= 10
    assert mid.usage.database_bytes == seen.bytes > 0 and mid.usage.storage_objects >= 1


def test_a_wiki_that_cannot_be_inspected_is_unknown(farm_drivers, ops_user):
    (wiki,) = make_wikis(ops_user, ["gone"])
    database_driver().purge(wiki_resources(wiki))  # its database vanished behind our back
    inventory.record_usage(wiki)
    wiki.refresh_from_db()
    assert wiki.size_class == SizeClass.UNKNOWN
    assert "does not exist" in wiki.usage.error


def test_backup_run_writes_manifests_and_keeps_the_last_k(farm_drivers, ops_user, settings):
    settings.FARM_BACKUP_KEEP = 2
    wikis = make_wikis(ops_user, ["bka", "bkb"])
    index_demo_pages(wikis[0], pages=5)
    run_ids = []
    for _ in range(3):
        run = runs.run_create(actor=ops_user, kind="backup", selection={"all": True})
        run_runs()
        run.refresh_from_db()
        assert run.state == RunState.FINISHED, runs.report(run)
        run_ids.append(run.pk)
    report = runs.report(run)
    assert report["succeeded"] == 2 and report["failed"] == 0 and report["bytes"] > 0
    kept = list(WikiBackup.objects.filter(wiki_id="bka").values_list("backup_id", flat=True))
    assert sorted(kept) == sorted(run_ids[1:])
    assert not sinks.backup_sink(run_ids[0], "bka").exists("manifest.json")
    manifest = sinks.backup_sink(run_ids[2], "bka")
    assert manifest.exists("manifest.json") and manifest.exists("database.sql.gz")
    # Nothing was dropped: the wiki is as it was.
    assert Wiki.objects.get(pk="bka").state == "active"
    assert search_driver().inspect(wiki_resources(wikis[0])).counts["wikipage"] == 5
    rows = list(csv.DictReader(io.StringIO(runs.report_csv(run))))
    assert [row["wiki_id"] for row in rows] == ["bka", "bkb"]
    assert {row["state"] for row in rows} == {"succeeded"}


def test_per_class_parallelism_is_enforced_by_dispatch(farm_drivers, ops_user):
    make_wikis(ops_user, [f"par{n}" for n in range(6)])
    Wiki.objects.filter(pk__in=["par0", "par1", "par2"]).update(size_class="small")
    Wiki.objects.filter(pk__in=["par3", "par4", "par5"]).update(size_class="medium")
    run = runs.run_create(
        actor=ops_user,
        kind="backup",
        selection={"all": True},
        parallelism={"small": 2, "medium": 1},
    )
    runs.dispatch(run.pk)
    runs.dispatch(run.pk)  # a second dispatch finds the class full
    running = run.items.filter(state=RunItemState.RUNNING)
    assert running.count() == 2 and set(running.values_list("size_class", flat=True)) == {"small"}
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.FINISHED
    assert run.items.filter(state=RunItemState.SUCCEEDED).count() == 6


def test_halt_threshold_then_retry_failed_ends_like_a_clean_run(farm_drivers, ops_user):
    make_wikis(ops_user, ["hla", "hlb", "hlc", "hld"])
    broken = Wiki.objects.get(pk="hlb")
    path = database_driver().database_path(wiki_resources(broken))
    moved = path.with_suffix(".moved")
    path.rename(moved)  # the dump fails for this wiki
    run = runs.run_create(
        actor=ops_user,
        kind="backup",
        selection={"all": True},
        parallelism={"unknown": 1},
        halt_after_failures=1,
    )
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.HALTED and "1 failures" in run.halted_reason
    assert run.items.get(wiki_ref="hlb").state == RunItemState.FAILED
    assert run.items.filter(state=RunItemState.QUEUED).count() == 2  # hlc, hld wait
    # The failed item's operation does not block the wiki's lifecycle.
    assert not Operation.objects.filter(open_for_wiki="hlb").exists()
    moved.rename(path)
    runs.run_retry_failed(actor=ops_user, run_id=run.pk)
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.FINISHED
    assert set(run.items.values_list("state", flat=True)) == {RunItemState.SUCCEEDED}
    assert WikiBackup.objects.filter(backup_id=run.pk).count() == 4


def test_cancel_leaves_queued_items_cancelled(farm_drivers, ops_user):
    make_wikis(ops_user, ["cna", "cnb", "cnc"])
    run = runs.run_create(
        actor=ops_user, kind="backup", selection={"all": True}, parallelism={"unknown": 1}
    )
    runs.dispatch(run.pk)
    runs.run_cancel(actor=ops_user, run_id=run.pk)
    run_runs()
    run_pending()
    run.refresh_from_db()
    states = sorted(run.items.values_list("state", flat=True))
    assert run.state == RunState.CANCELLED
    assert states == ["cancelled", "cancelled", "succeeded"]


def test_migration_run_applies_once_and_a_rerun_skips(farm_drivers, ops_user, tmp_path):
    make_wikis(ops_user, ["mga", "mgb"])
    sql = tmp_path / "add_column.sql"
    sql.write_text("ALTER TABLE /*_*/page ADD COLUMN page_farm_flag INTEGER DEFAULT 0;\n")
    params = {"migration": "2026-12-page-flag", "sql_file": str(sql)}
    run = runs.run_create(actor=ops_user, kind="migrate", selection={"all": True}, params=params)
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.FINISHED, runs.report(run)
    assert WikiMigration.objects.filter(name="2026-12-page-flag").count() == 2
    rerun = runs.run_create(actor=ops_user, kind="migrate", selection={"all": True}, params=params)
    run_runs()
    rerun.refresh_from_db()
    assert rerun.state == RunState.FINISHED
    assert set(rerun.items.values_list("state", flat=True)) == {RunItemState.SKIPPED}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"selection": {"everything": True}}, "selection"),
        ({"selection": {"family": "nope"}}, "selection.family"),
        ({"parallelism": {"small": 0}}, "parallelism.small"),
        ({"parallelism": {"small": -3}}, "parallelism.small"),
        ({"halt_failure_share": 1.5}, "halt_failure_share"),
        ({"halt_after_failures": 0}, "halt_after_failures"),
        (
            {"kind": "migrate", "params": {"migration": "m1", "command": "php x.php; rm -rf /"}},
            "command",
        ),
        (
            {"kind": "migrate", "params": {"migration": "m1", "sql_file": "/no/such/file.sql"}},
            "sql_file",
        ),
        ({"kind": "defrag"}, "kind"),
    ],
)
def test_bad_run_input_is_refused_and_changes_nothing(farm_drivers, ops_user, arguments, field):
    make_wikis(ops_user, ["bad"])
    call = {"kind": "backup", "selection": {"all": True}, **arguments}
    with pytest.raises(InvalidInput) as error:
        runs.run_create(actor=ops_user, **call)
    assert error.value.field == field
    assert error.value.message
    assert not Run.objects.exists()


def test_only_ops_start_runs(farm_drivers, admin_user_a):
    with pytest.raises(NotAllowed):
        runs.run_create(actor=admin_user_a, kind="backup", selection={"all": True})


def test_restore_in_place_and_as_new_id(farm_drivers, ops_user):
    (wiki,) = make_wikis(ops_user, ["src"])
    resources = wiki_resources(wiki)
    index_demo_pages(wiki, pages=7)
    add_pages(wiki, 12)
    storage_driver().put_file(resources, "images/a/ab/Logo.png", b"png" * 100)
    rows = database_driver().inspect(resources).details["table_rows"]
    run = runs.run_create(actor=ops_user, kind="backup", selection={"wiki_ids": ["src"]})
    run_runs()

    add_pages(wiki, 5)  # changes after the backup are undone by the restore
    with pytest.raises(InvalidInput):
        restores.wiki_restore(actor=ops_user, wiki_id="src", source_id=run.pk, confirm="nope")
    operation = restores.wiki_restore(
        actor=ops_user, wiki_id="src", source_id=run.pk, confirm="src"
    )
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert database_driver().inspect(resources).details["table_rows"] == rows
    # The state before the restore was backed up first.
    assert WikiBackup.objects.filter(wiki=wiki, kind="before-restore").count() == 1
    wiki.refresh_from_db()
    assert not wiki.offline

    clone_op = restores.wiki_clone(
        actor=ops_user, wiki_id="src", source_id=run.pk, new_id="srccopy"
    )
    run_pending()
    clone_op.refresh_from_db()
    assert clone_op.state == OperationState.SUCCEEDED, clone_op.error
    clone = Wiki.objects.get(pk="srccopy")
    assert clone.state == "active" and clone.cloned_from == {"wiki": "src", "backup": run.pk}
    clone_resources = wiki_resources(clone)
    assert database_driver().inspect(clone_resources).details["table_rows"] == rows
    assert search_driver().inspect(clone_resources).counts["wikipage"] == 7
    assert (
        storage_driver().inspect(clone_resources).counts["objects"]
        == (storage_driver().inspect(resources).counts["objects"])
    )
