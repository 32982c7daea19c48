"""The Runs pages and the wiki page's usage, backups, restore and clone, through Django's
test client with CSRF checks on, over the embedded drivers; runs are driven by run_runs."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.urls import reverse

from farm.models import Wiki
from provisioning import inventory, runs
from provisioning.drivers import database_driver
from provisioning.models import Operation, OperationKind, Run, RunItemState, RunState
from provisioning.steps import wiki_resources
from tests.provisioning.helpers import run_pending, run_runs
from tests.ui.conftest import browser, submit
from tests.ui.test_browser import (
    ARTIFACTS,
    Person,
    chromium,  # noqa: F401  (the browser fixture)
    shoot,
)
from tests.ui.test_views import field_block

pytestmark = pytest.mark.django_db

BACKUP_FORM = {
    "kind": "backup",
    "selection": "all",
    "parallelism_small": "8",
    "parallelism_medium": "4",
    "parallelism_large": "2",
    "parallelism_xlarge": "1",
    "parallelism_unknown": "1",
}


def start_backup_run(client, **changes) -> Run:
    """Through the preview and its Confirm button, as a person does."""
    form = {**BACKUP_FORM, **changes}
    preview = submit(client, reverse("run-start"), {**form, "action": "preview"})
    assert preview.status_code == 200, preview.content.decode()[:2000]
    assert not Run.objects.exists()  # a preview starts nothing
    created = submit(client, reverse("run-start"), {**form, "action": "confirm"})
    assert created.status_code == 302
    run = Run.objects.get()
    assert created["Location"] == reverse("run-detail", args=[run.pk])
    return run


def error_beside(html: str, field: str) -> str:
    """The error list shown with one field (an input's or a group of checkboxes')."""
    match = re.search(
        rf'<ul class="errorlist" id="id_{field}_error" role="alert">.*?</ul>', html, re.DOTALL
    )
    assert match, f"no error beside {field} in the page"
    return match.group(0)


def break_database(wiki: Wiki):
    """The dump fails for this wiki (as tests/provisioning/test_runs.py does it)."""
    path = database_driver().database_path(wiki_resources(wiki))
    moved = path.with_suffix(".moved")
    path.rename(moved)
    return lambda: moved.rename(path)


# --- who sees runs -------------------------------------------------------------------------


def test_runs_are_not_found_for_wiki_admins(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alpha")
    run = runs.run_create(actor=ops_user, kind="backup", selection={"all": True})
    client = browser(admin_user_a)
    assert "Runs" not in client.get(reverse("wiki-list")).content.decode()
    for url in (
        reverse("run-list"),
        reverse("run-start"),
        reverse("run-detail", args=[run.pk]),
        reverse("run-report", args=[run.pk, "json"]),
        reverse("run-report", args=[run.pk, "csv"]),
    ):
        assert client.get(url).status_code == 404, url
    assert client.get(reverse("run-progress", args=[run.pk])).status_code == 404
    assert (
        submit(client, reverse("run-start"), {**BACKUP_FORM, "action": "confirm"}).status_code
        == 404
    )
    assert submit(client, reverse("run-control", args=[run.pk, "cancel"])).status_code == 404
    assert Run.objects.count() == 1
    run.refresh_from_db()
    assert run.state == RunState.PENDING


def test_auditors_read_runs_but_cannot_start_or_control(
    farm_drivers, admin_user_a, ops_user, auditor_user, wikis
):
    wikis.active(admin_user_a, "alpha")
    run = runs.run_create(actor=ops_user, kind="backup", selection={"all": True})
    client = browser(auditor_user)
    listing = client.get(reverse("run-list")).content.decode()
    assert 'href="/runs/"' in listing and run.pk in listing and "Start a run" not in listing
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert "Progress" in page and "Halt</button>" not in page
    assert client.get(reverse("run-start")).status_code == 403
    assert (
        submit(client, reverse("run-start"), {**BACKUP_FORM, "action": "confirm"}).status_code
        == 403
    )
    assert submit(client, reverse("run-control", args=[run.pk, "halt"])).status_code == 403
    assert Run.objects.count() == 1 and Run.objects.get().state == RunState.PENDING


# --- start, watch, download ------------------------------------------------------------------


def test_ops_start_a_backup_run_through_the_preview_and_follow_it(
    farm_drivers, admin_user_a, ops_user, wikis
):
    for wiki_id in ("alpha", "beta", "gamma"):
        wikis.active(admin_user_a, wiki_id)
    Wiki.objects.filter(pk="alpha").update(size_class="small")
    client = browser(ops_user)
    form = client.get(reverse("run-start")).content.decode()
    assert 'name="parallelism_small"' in form and 'value="8"' in field_block(
        form, "parallelism_small"
    )
    preview = submit(
        client, reverse("run-start"), {**BACKUP_FORM, "parallelism_small": "3", "action": "preview"}
    ).content.decode()
    assert "Preview: a backup run over all wikis" in preview and 'id="preview-total">3<' in preview
    small = re.search(r'<tr data-size-class="small".*?</tr>', preview, re.DOTALL).group(0)
    assert [int(n) for n in re.findall(r"<td>(\d+)</td>", small)] == [
        1,
        3,
        1,
    ]  # wikis, limit, at once
    unknown = re.search(r'<tr data-size-class="unknown".*?</tr>', preview, re.DOTALL).group(0)
    assert [int(n) for n in re.findall(r"<td>(\d+)</td>", unknown)] == [2, 1, 1]
    assert (
        'value="confirm"' in preview
        and 'type="hidden" name="parallelism_small" value="3"' in preview
    )

    run = start_backup_run(client, parallelism_small="3")
    assert run.parallelism["small"] == 3 and run.created_by == ops_user
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert f'data-run-progress-url="/runs/{run.pk}/progress.json"' in page
    assert 'http-equiv="refresh"' in page and "Halt</button>" in page
    progress = client.get(reverse("run-progress", args=[run.pk])).json()
    assert progress["state"] == "pending" and progress["total"] == 3 and progress["done"] == 0
    assert progress["per_class"]["unknown"]["queued"] == 2 and progress["active"] is True

    run_runs()
    progress = client.get(reverse("run-progress", args=[run.pk])).json()
    assert progress["state"] == "finished" and progress["done"] == 3
    assert progress["totals"]["succeeded"] == 3 and progress["active"] is False
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert 'data-run-field="per_class.unknown.succeeded">2<' in page
    assert 'http-equiv="refresh"' not in page and "Halt</button>" not in page
    listing = client.get(reverse("run-list")).content.decode()
    assert run.pk in listing and "3 / 3" in listing

    report = client.get(reverse("run-report", args=[run.pk, "json"]))
    assert report["Content-Disposition"] == f'attachment; filename="run-{run.pk}.json"'
    body = json.loads(report.content)
    assert body["succeeded"] == 3 and body["failed"] == 0 and body["bytes"] > 0
    assert [item["wiki_id"] for item in body["items"]] == ["alpha", "beta", "gamma"]
    report_csv = client.get(reverse("run-report", args=[run.pk, "csv"]))
    assert report_csv["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report_csv.content.decode())))
    assert {row["state"] for row in rows} == {"succeeded"} and len(rows) == 3


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"parallelism_small": "0"}, "parallelism_small", "from 1 to 1000"),
        ({"halt_failure_share": "1.5"}, "halt_failure_share", "at most 1"),
        ({"halt_after_failures": "0"}, "halt_after_failures", "at least 1"),
        ({"selection": "family", "family": ""}, "family", "does not exist"),
        (
            {"selection": "wiki_ids", "wiki_ids": "alpha nosuch"},
            "wiki_ids",
            "no such wikis: nosuch",
        ),
        ({"selection": "wiki_ids", "wiki_ids": "Bad-Id"}, "wiki_ids", "Each wiki id must be"),
        ({"selection": "size_classes"}, "size_classes", "non-empty list"),
        (
            {"kind": "migrate", "migration": "m1", "command": "php x.php; rm -rf /"},
            "command",
            "shell metacharacters",
        ),
        (
            {"kind": "migrate", "migration": "m1", "sql_file": "/no/such/file.sql"},
            "sql_file",
            "does not exist",
        ),
        ({"kind": "migrate", "migration": "Bad Name", "command": "true"}, "migration", "must"),
    ],
)
@pytest.mark.parametrize("action", ["preview", "confirm"])
def test_bad_run_input_is_shown_beside_its_field_and_starts_nothing(
    farm_drivers, admin_user_a, ops_user, wikis, changes, field, message, action
):
    wikis.active(admin_user_a, "alpha")
    response = submit(
        browser(ops_user), reverse("run-start"), {**BACKUP_FORM, **changes, "action": action}
    )
    assert response.status_code == 400
    assert message in error_beside(response.content.decode(), field)
    assert not Run.objects.exists()


def test_a_migration_run_previews_its_file_then_runs(
    farm_drivers, admin_user_a, ops_user, wikis, tmp_path
):
    wikis.active(admin_user_a, "alpha")
    sql = tmp_path / "flag.sql"
    sql.write_text("ALTER TABLE /*_*/page ADD COLUMN page_ui_flag INTEGER DEFAULT 0;\n")
    client = browser(ops_user)
    form = {**BACKUP_FORM, "kind": "migrate", "migration": "ui-flag", "sql_file": str(sql)}
    preview = submit(client, reverse("run-start"), {**form, "action": "preview"}).content.decode()
    assert "ui-flag" in preview and str(sql) in preview
    changed = submit(client, reverse("run-start"), {**form, "action": "edit"}).content.decode()
    assert f'value="{sql}"' in changed  # back to the form with what was typed
    assert submit(client, reverse("run-start"), {**form, "action": "confirm"}).status_code == 302
    run = Run.objects.get()
    assert run.params["migration"] == "ui-flag" and run.params["backup_first"] is False
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.FINISHED, runs.report(run)


def test_a_command_with_its_placeholders_is_accepted(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alpha")
    command = "true --wiki={wiki} --db={dbname}"
    form = {**BACKUP_FORM, "kind": "migrate", "migration": "noop", "command": command}
    preview = submit(browser(ops_user), reverse("run-start"), {**form, "action": "preview"})
    assert preview.status_code == 200 and f"<code>{command}</code>" in preview.content.decode()


# --- halt, resume, cancel, retry failed ------------------------------------------------------


def test_halt_resume_retry_failed_and_cancel_buttons(farm_drivers, admin_user_a, ops_user, wikis):
    for wiki_id in ("hla", "hlb", "hlc", "hld"):
        wikis.active(admin_user_a, wiki_id)
    repair = break_database(Wiki.objects.get(pk="hlb"))
    client = browser(ops_user)
    run = start_backup_run(client, halt_after_failures="1")
    url = reverse("run-detail", args=[run.pk])

    def control(action):
        page = reverse("run-detail", args=[run.pk])
        response = submit(client, reverse("run-control", args=[run.pk, action]))
        assert response.status_code == 302 and response["Location"] == page
        run.refresh_from_db()
        return client.get(page).content.decode()

    # Halted by hand before anything ran, then resumed.
    page = control("halt")
    assert run.state == RunState.HALTED and "halted by opsuser" in page
    assert "Resume</button>" in page and "Halt</button>" not in page
    run_runs()  # a halted run dispatches nothing
    assert not run.items.exclude(state=RunItemState.QUEUED).exists()
    page = control("resume")
    assert run.state == RunState.RUNNING and "Halt</button>" in page

    # The broken wiki passes the threshold: the run halts by itself and says why.
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.HALTED
    page = client.get(url).content.decode()
    assert 'id="halted-reason"' in page and "1 failures reached the threshold" in page
    failed = re.search(r'<section class="card" id="failed-items">.*?</section>', page, re.DOTALL)
    assert "hlb" in failed.group(0) and "output-tail" in failed.group(0)
    assert "Retry failed</button>" in page

    # Fixed, retried alone: the run finishes like a clean one.
    repair()
    page = control("retry-failed")
    assert run.state == RunState.RUNNING and "Queued the failed items" in page
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.FINISHED
    assert set(run.items.values_list("state", flat=True)) == {RunItemState.SUCCEEDED}
    page = client.get(url).content.decode()
    assert "Retry failed</button>" not in page and "Cancel</button>" not in page

    # A control the state does not allow is refused with the service's words.
    page = control("resume")
    assert "cannot resume run" in page and run.state == RunState.FINISHED

    # Cancel: queued items are cancelled.
    Run.objects.all().delete()
    run = start_backup_run(client)
    page = control("cancel")
    assert run.state == RunState.CANCELLED and "Cancel</button>" not in page
    assert set(run.items.values_list("state", flat=True)) == {RunItemState.CANCELLED}


def test_a_control_without_the_csrf_token_is_refused(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alpha")
    run = runs.run_create(actor=ops_user, kind="backup", selection={"all": True})
    response = browser(ops_user).post(reverse("run-control", args=[run.pk, "cancel"]))
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.state == RunState.PENDING


# --- the wiki page: size class, usage, backups, restore, clone -------------------------------


def backed_up(ops_user, wiki_id: str) -> Run:
    run = runs.run_create(actor=ops_user, kind="backup", selection={"wiki_ids": [wiki_id]})
    run_runs()
    run.refresh_from_db()
    assert run.state == RunState.FINISHED, runs.report(run)
    return run


def test_wiki_page_shows_size_class_usage_and_backups(farm_drivers, admin_user_a, ops_user, wikis):
    wiki = wikis.active(admin_user_a, "alpha")
    client = browser(admin_user_a)
    page = client.get(reverse("wiki-detail", args=["alpha"])).content.decode()
    assert "data-size-class>unknown<" in page and "Not inspected yet" in page
    assert "No backups yet" in page and "Restore in place" not in page

    inventory.record_usage(wiki)
    run = backed_up(ops_user, "alpha")
    page = client.get(reverse("wiki-detail", args=["alpha"])).content.decode()
    usage = re.search(r'<section class="card" id="usage">.*?</section>', page, re.DOTALL).group(0)
    assert "Pages" in usage and "Search documents" in usage and "Inspected" in usage
    assert "data-size-class>small<" in page
    assert f"<code>{run.pk}</code>" in page and "run backup" in page
    # Its owner may copy it, but only ops restore in place.
    assert 'id="clone-form"' in page and 'id="restore-form"' not in page
    ops_page = browser(ops_user).get(reverse("wiki-detail", args=["alpha"])).content.decode()
    assert 'id="restore-form"' in ops_page

    listing = client.get(reverse("wiki-list"), {"size_class": "small"}).content.decode()
    assert ">alpha<" in listing and 'class="size size-small"' in listing
    other = client.get(reverse("wiki-list"), {"size_class": "large"}).content.decode()
    assert ">alpha<" not in other


def test_a_wiki_that_cannot_be_inspected_says_why(farm_drivers, admin_user_a, wikis):
    wiki = wikis.active(admin_user_a, "alpha")
    database_driver().purge(wiki_resources(wiki))
    inventory.record_usage(wiki)
    page = browser(admin_user_a).get(reverse("wiki-detail", args=["alpha"])).content.decode()
    assert "Could not be inspected" in page and "does not exist" in page


def test_restore_in_place_needs_the_typed_id(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alpha")
    run = backed_up(ops_user, "alpha")
    client = browser(ops_user)
    url = reverse("wiki-restore", args=["alpha"])
    before = Operation.objects.count()

    wrong = submit(client, url, {"restore-source": run.pk, "restore-confirm": "alp"})
    assert wrong.status_code == 400
    assert "type the wiki id" in field_block(wrong.content.decode(), "restore-confirm")
    unknown = submit(
        client, url, {"restore-source": "20000101T000000Z-00000000", "restore-confirm": "alpha"}
    )
    assert unknown.status_code == 404
    assert "has no backup or archive" in field_block(unknown.content.decode(), "restore-source")
    assert Operation.objects.count() == before

    owner = browser(admin_user_a)
    assert (
        submit(owner, url, {"restore-source": run.pk, "restore-confirm": "alpha"}).status_code
        == 403
    )

    done = submit(client, url, {"restore-source": run.pk, "restore-confirm": "alpha"})
    assert done.status_code == 302 and done["Location"] == reverse("wiki-detail", args=["alpha"])
    operation = Operation.objects.get(kind=OperationKind.RESTORE)
    page = client.get(done["Location"]).content.decode()
    assert f'data-operation-url="/api/v1/operations/{operation.pk}/"' in page
    assert "Restoring alpha" in page
    run_pending()
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error


def test_clone_as_a_new_wiki(farm_drivers, admin_user_a, admin_user_b, ops_user, wikis):
    wikis.active(admin_user_a, "alpha")
    run = backed_up(ops_user, "alpha")
    client = browser(admin_user_a)
    url = reverse("wiki-clone", args=["alpha"])

    taken = submit(client, url, {"clone-source": run.pk, "clone-new_id": "alpha"})
    assert taken.status_code == 400 and "is taken" in field_block(
        taken.content.decode(), "clone-new_id"
    )
    bad = submit(client, url, {"clone-source": run.pk, "clone-new_id": "Bad-Id"})
    assert "must be a lowercase letter" in field_block(bad.content.decode(), "clone-new_id")
    assert (
        submit(
            browser(admin_user_b), url, {"clone-source": run.pk, "clone-new_id": "bobs"}
        ).status_code
        == 404
    )

    done = submit(
        client, url, {"clone-source": run.pk, "clone-new_id": "alphacopy", "clone-sitename": "Copy"}
    )
    assert done.status_code == 302 and done["Location"] == reverse(
        "wiki-detail", args=["alphacopy"]
    )
    page = client.get(done["Location"]).content.decode()
    assert "data-operation-url" in page and "Copying alpha as alphacopy" in page
    run_pending()
    clone = Wiki.objects.get(pk="alphacopy")
    assert clone.state == "active" and clone.sitename == "Copy"
    page = client.get(done["Location"]).content.decode()
    cloned = re.search(r'<dd id="cloned-from">.*?</dd>', page, re.DOTALL).group(0)
    assert 'href="/wikis/alpha/"' in cloned and run.pk in cloned


# --- in the browser ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_run_page_follows_the_run_without_a_reload(
    chromium,  # noqa: F811
    live_server,
    farm_drivers,
    admin_user_a,
    ops_user,
    wikis,
):
    from playwright.sync_api import expect

    from provisioning import engine

    for wiki_id in ("liva", "livb", "livc"):
        wikis.active(admin_user_a, wiki_id)
    run = runs.run_create(
        actor=ops_user, kind="backup", selection={"all": True}, parallelism={"unknown": 1}
    )
    ops = Person(chromium, live_server.url, "opsuser")
    ops.sign_in()
    page = ops.page
    page.get_by_role("link", name="Runs").click()
    page.get_by_role("link", name=run.pk).click()
    page.wait_for_url(f"**/runs/{run.pk}/")
    page.evaluate("window.sameDocument = true")  # gone if the page is loaded again

    def cell(state):
        return page.locator(f'[data-run-field="per_class.unknown.{state}"]')

    expect(cell("queued")).to_have_text("3")
    runs.dispatch(run.pk)  # one item runs: the class allows one at a time
    expect(cell("running")).to_have_text("1", timeout=10_000)
    expect(cell("queued")).to_have_text("2")
    expect(page.locator('[data-run-field="state"]')).to_have_text("running", timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    shoot(page, "20-run-progress")

    (operation,) = Operation.objects.filter(run=run, state="pending")
    engine.run_operation(operation.pk)
    expect(cell("succeeded")).to_have_text("1", timeout=10_000)
    expect(page.locator('[data-run-field="done"]')).to_have_text("1")

    run_runs()
    expect(page.locator('[data-run-field="state"]')).to_have_text("finished", timeout=10_000)
    expect(cell("succeeded")).to_have_text("3")
    expect(page.get_by_role("button", name="Halt")).to_have_count(0)
    assert page.evaluate("window.sameDocument") is True
    shoot(page, "21-run-finished")
    page.goto("/wikis/liva/")
    expect(page.locator("#backups")).to_contain_text(run.pk)
    shoot(page, "22-wiki-backups")
    page.goto("/runs/new/")
    shoot(page, "23-run-start")
