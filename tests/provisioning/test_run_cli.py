"""`manage.py run` (farm-wide runs) and `manage.py wiki backups|restore` from the command
line. Runs are worked off by run_runs where the `runs` workers would: a run is started
without --wait and driven, or --wait polls while the patched sleep drives it."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.management import CommandError, call_command

from farm.models import Wiki
from provisioning import runs, services
from provisioning.drivers import database_driver
from provisioning.management.commands import run as run_command
from provisioning.models import Run, RunState
from provisioning.steps import wiki_resources
from tests.provisioning.helpers import run_pending, run_runs

pytestmark = pytest.mark.django_db


def run(*arguments: str, actor: str = "opsuser") -> tuple[str, str]:
    """`manage.py run --actor <actor> ...`: (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("run", f"--actor={actor}", *arguments, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def wiki(*arguments: str, actor: str = "opsuser") -> str:
    out = io.StringIO()
    call_command("wiki", f"--actor={actor}", *arguments, stdout=out)
    return out.getvalue()


def make_wikis(actor, *ids: str, size_class: str | None = None) -> None:
    for wiki_id in ids:
        services.wiki_create(actor=actor, wiki_id=wiki_id, family="default", sitename=wiki_id)
    run_pending()
    if size_class:
        Wiki.objects.filter(pk__in=ids).update(size_class=size_class)


def break_database(wiki_id: str):
    """Move a wiki's database away (its backup fails); returns how to put it back."""
    path = database_driver().database_path(wiki_resources(Wiki.objects.get(pk=wiki_id)))
    moved = path.with_suffix(".moved")
    path.rename(moved)
    return lambda: moved.rename(path)


@pytest.fixture
def worker_between_polls(monkeypatch):
    """--wait sleeps between polls: the runs (and other operations) are worked off then."""
    monkeypatch.setattr(run_command.time, "sleep", lambda seconds: (run_runs(), run_pending()))


def test_backup_run_started_shown_and_reported(farm_drivers, ops_user):
    make_wikis(ops_user, "sma", "smb", size_class="small")
    make_wikis(ops_user, "mea", size_class="medium")

    out, err = run("backup", "--all", "--parallelism", "small=4,medium=2", "--halt-after", "3")

    run_id = out.strip()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", run_id) and out == f"{run_id}\n"
    assert err.strip() == f"backup run {run_id}: pending, 3 wikis (small 2, medium 1)"
    created = Run.objects.get(pk=run_id)
    assert created.parallelism["small"] == 4 and created.halt_after_failures == 3
    assert created.created_by == ops_user

    run_runs()
    shown = run("show", run_id)[0]
    assert shown.startswith(f"backup run {run_id}: finished\n")
    assert "  small    2/2  2 succeeded\n" in shown and "  medium   1/1  1 succeeded\n" in shown
    listed = run("list")[0]
    assert re.match(rf"^{run_id}  backup +finished .* 3 ok, 0 failed, 0 to go$", listed)
    rows = list(csv.DictReader(io.StringIO(run("report", run_id, "--csv")[0])))
    assert [(row["wiki_id"], row["state"]) for row in rows] == [
        ("mea", "succeeded"),
        ("sma", "succeeded"),
        ("smb", "succeeded"),
    ]
    report = json.loads(run("report", run_id)[0])
    assert (report["succeeded"], report["failed"], report["bytes"] > 0) == (3, 0, True)


def test_selections_and_a_migration_run(farm_drivers, ops_user):
    make_wikis(ops_user, "mga", "mgb", "mgc")
    by_wiki = run("inventory", "--wiki", "mga,mgb")[0].strip()
    assert Run.objects.get(pk=by_wiki).selection == {"wiki_ids": ["mga", "mgb"]}
    everything = run("inventory")[0].strip()
    assert Run.objects.get(pk=everything).selection == {"all": True}
    run_runs()
    assert set(Wiki.objects.values_list("size_class", flat=True)) == {"small"}
    by_class = run("backup", "--class", "small,medium")[0].strip()
    assert Run.objects.get(pk=by_class).selection == {"size_classes": ["small", "medium"]}
    run("cancel", by_class)

    migration = run(
        "migrate",
        "--family",
        "default",
        "--name",
        "2026-12-touch",
        "--command",
        "echo touched {wiki}",
        "--backup-first",
    )[0].strip()
    assert Run.objects.get(pk=migration).params == {
        "migration": "2026-12-touch",
        "backup_first": True,
        "command": "echo touched {wiki}",
    }
    run_runs()
    assert run("show", migration)[0].startswith(f"migrate run {migration}: finished\n")
    items = {
        row["wiki_id"]: row
        for row in csv.DictReader(io.StringIO(runs.report_csv(Run.objects.get(pk=migration))))
    }
    assert items["mgb"]["output_tail"] == "touched mgb"


def test_halt_retry_failed_resume_and_cancel(farm_drivers, ops_user):
    make_wikis(ops_user, "hla", "hlb", "hlc")
    put_back = break_database("hlb")
    run_id = run("backup", "--all", "--parallelism", "unknown=1", "--halt-after", "1")[0].strip()
    run_runs()
    shown = run("show", run_id)[0]
    assert shown.startswith(f"backup run {run_id}: halted\nhalted: 1 failures reached")
    assert re.search(r"^  failed hlb: \w+", shown, re.MULTILINE)

    put_back()
    assert run("retry-failed", run_id)[0] == f"backup run {run_id}: running\n"
    assert run("halt", run_id)[0] == f"backup run {run_id}: halted\n"
    assert run("resume", run_id)[0] == f"backup run {run_id}: running\n"
    run_runs()
    assert Run.objects.get(pk=run_id).state == RunState.FINISHED

    queued = run("backup", "--all")[0].strip()
    assert run("cancel", queued)[0] == f"backup run {queued}: cancelled\n"
    with pytest.raises(CommandError, match=rf"^wrong_state: cannot cancel run {queued}: it is"):
        run("cancel", queued)


REFUSALS = {
    "parallelism 0": (
        ["backup", "--all", "--parallelism", "small=0"],
        "invalid: parallelism.small must be a whole number from 1 to 1000, not 0",
    ),
    "parallelism word": (
        ["backup", "--all", "--parallelism", "small=many"],
        "invalid: parallelism.small must be a whole number from 1 to 1000, not 'many'",
    ),
    "parallelism pair": (
        ["backup", "--all", "--parallelism", "small"],
        "--parallelism takes class=number pairs, not 'small'",
    ),
    "share 1.5": (
        ["backup", "--all", "--halt-share", "1.5"],
        "invalid: halt_failure_share must be a share above 0 and at most 1, not 1.5",
    ),
    "unknown family": (["backup", "--family", "nope"], "invalid: family 'nope' does not exist"),
    "unknown class": (["backup", "--class", "huge"], "invalid: unknown size classes ['huge']"),
    "unknown wiki": (["backup", "--wiki", "nosuch"], "invalid: no such wikis: nosuch"),
    "no selection": (["backup"], "Error: one of the arguments --all"),
    "two selections": (["backup", "--all", "--tag", "x"], "Error: argument --tag: not allowed"),
    "shell command": (
        ["migrate", "--all", "--name", "m1", "--command", "php update.php; rm -rf /"],
        "invalid: command holds shell metacharacters (';')",
    ),
    "missing sql": (
        ["migrate", "--all", "--name", "m1", "--sql", "/no/such/file.sql"],
        "invalid: sql_file '/no/such/file.sql' does not exist",
    ),
    "no name": (["migrate", "--all", "--command", "true"], "invalid: params.migration must"),
    "unknown run": (["show", "nosuch"], "not_found: run 'nosuch' not found"),
}


@pytest.mark.parametrize(("arguments", "message"), REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_input_is_a_command_error_and_starts_nothing(
    farm_drivers, ops_user, arguments, message
):
    make_wikis(ops_user, "bad")
    with pytest.raises(CommandError) as caught:
        run(*arguments)
    assert str(caught.value).startswith(message), str(caught.value)
    assert not Run.objects.exists()


def test_runs_are_for_ops(farm_drivers, ops_user, admin_user_a, auditor_user):
    make_wikis(ops_user, "opa")
    run_id = run("backup", "--all")[0].strip()
    with pytest.raises(CommandError, match="^forbidden: only ops may start farm-wide runs$"):
        run("backup", "--all", actor="alice")
    with pytest.raises(CommandError, match=f"^not_found: run '{run_id}' not found$"):
        run("show", run_id, actor="alice")
    assert run("list", actor="alice") == ("", "")
    # Auditors read runs and change none.
    assert run_id in run("list", actor="audrey")[0]
    with pytest.raises(CommandError, match="^forbidden: only ops may halt runs$"):
        run("halt", run_id, actor="audrey")
    with pytest.raises(CommandError, match="no user 'nobody'"):
        run("list", actor="nobody")


def test_wait_shows_progress_per_class_until_the_run_ends(
    farm_drivers, ops_user, worker_between_polls
):
    make_wikis(ops_user, "wta", "wtb", size_class="small")
    make_wikis(ops_user, "wtc", size_class="medium")

    out, err = run("backup", "--all", "--wait")

    run_id = out.strip()
    assert re.search(r"^small +━+ 2/2 0 running, 0 failed", err, re.MULTILINE), err
    assert re.search(r"^medium +━+ 1/1 0 running, 0 failed", err, re.MULTILINE), err
    assert err.splitlines()[-1].startswith(
        f"backup run {run_id} finished: 3 succeeded, 0 failed, 0 skipped, "
    )


def test_wait_exits_non_zero_when_the_run_halts(farm_drivers, ops_user, worker_between_polls):
    make_wikis(ops_user, "wha", "whb")
    break_database("wha")

    with pytest.raises(CommandError) as caught:
        run("backup", "--all", "--halt-after", "1", "--parallelism", "unknown=1", "--wait")

    run_id = Run.objects.get().pk
    assert str(caught.value) == (
        f"run {run_id} halted with 1 failed wikis: 1 failures reached the threshold of 1; "
        f"see `manage.py run show {run_id}`"
    )
    out, _ = run("retry-failed", run_id)  # without --wait: nothing to follow yet
    assert out == f"backup run {run_id}: running\n"


# --- wiki backups and restore -------------------------------------------------------------


def test_wiki_restore_in_place_and_as_a_new_id(farm_drivers, ops_user, admin_user_a, monkeypatch):
    make_wikis(ops_user, "src")
    Wiki.objects.get(pk="src").owners.add(admin_user_a)
    backup_id = run("backup", "--wiki", "src")[0].strip()
    run_runs()
    assert re.fullmatch(rf"{backup_id}  backup  run +\S+  \d+ bytes\n", wiki("backups", "src"))

    with pytest.raises(CommandError, match="^invalid: type the wiki id 'src' to confirm"):
        wiki("restore", "src", "--from", backup_id)
    with pytest.raises(CommandError, match="^--confirm is for a restore in place"):
        wiki("restore", "src", "--from", backup_id, "--as", "srccopy", "--confirm", "src")
    with pytest.raises(CommandError, match="^forbidden: only ops may restore wikis in place"):
        wiki("restore", "src", "--from", backup_id, "--confirm", "src", actor="alice")

    out = wiki("restore", "src", "--from", backup_id, "--confirm", "src")
    assert re.fullmatch(r"restore operation [0-9a-f-]{36} for src: pending\n", out)
    run_pending()
    assert Wiki.objects.get(pk="src").state == "active"

    monkeypatch.setattr(run_command.time, "sleep", lambda seconds: run_pending())
    out = wiki("restore", "src", "--from", backup_id, "--as", "srccopy", "--wait")
    assert out.startswith("clone operation ")
    assert re.search(r"^clone srccopy ━+ 5/5 succeeded", out, re.MULTILINE), out
    status = wiki("status", "srccopy")
    assert f'cloned from {{"wiki": "src", "backup": "{backup_id}"}}' in status
    assert "size class unknown: never inspected" in wiki("status", "src")
