"""Farm-wide runs, inventory, restore and clone through the API, on the embedded drivers.
The runs are worked off by tests.provisioning.helpers.run_runs where the `runs` workers
would; the permission matrix (test_permissions.py) has these endpoints for every role."""

from __future__ import annotations

import csv
import io

import pytest

from farm.models import AuditEvent, Wiki
from provisioning import services
from provisioning.drivers import database_driver
from provisioning.models import Operation, OperationState, Run, RunState
from provisioning.steps import wiki_resources
from tests.api.conftest import API, token_client
from tests.provisioning.helpers import run_pending, run_runs

pytestmark = pytest.mark.django_db


def make_wikis(actor, *ids: str, size_class: str | None = None) -> None:
    for wiki_id in ids:
        services.wiki_create(actor=actor, wiki_id=wiki_id, family="default", sitename=wiki_id)
    run_pending()
    if size_class:
        # What an inventory would have found (test_inventory_through_the_api does it for real).
        Wiki.objects.filter(pk__in=ids).update(size_class=size_class)


@pytest.fixture
def ops(ops_user):
    return token_client(ops_user, "ops")[0]


def start(client, body, **headers):
    response = client.post(API + "/runs/", body, format="json", **headers)
    assert response.status_code == 201, response.content
    return response


def test_backup_run_from_preview_to_report(farm_drivers, ops_user, ops):
    make_wikis(ops_user, "sma", "smb", "smc", size_class="small")
    make_wikis(ops_user, "mea", "meb", size_class="medium")
    body = {"kind": "backup", "selection": {"all": True}, "parallelism": {"small": 2}}

    preview = ops.post(API + "/runs/preview/", body, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["per_class"] == {
        "small": 3,
        "medium": 2,
        "large": 0,
        "xlarge": 0,
        "unknown": 0,
    }
    assert preview.json()["estimated_parallelism"]["small"] == 2
    assert not Run.objects.exists()  # a preview starts nothing

    created = start(ops, body)
    run = created.json()
    assert created["Location"] == run["url"] and run["url"].endswith(f"/api/v1/runs/{run['id']}/")
    assert run["state"] == "pending" and run["parallelism"]["small"] == 2
    assert run["progress"]["total"] == 5 and run["progress"]["totals"]["queued"] == 5
    assert run["created_by"] == "opsuser"
    listed = ops.get(API + "/runs/?kind=backup&state=pending").json()
    assert [r["id"] for r in listed["results"]] == [run["id"]]
    assert ops.get(API + "/runs/?state=finished").json()["count"] == 0

    run_runs()
    detail = ops.get(run["url"]).json()
    assert detail["state"] == "finished" and detail["progress"]["done"] == 5
    assert detail["progress"]["per_class"]["small"]["succeeded"] == 3
    assert set(detail["progress"]["per_class"]) == {"small", "medium"}

    items = ops.get(run["url"] + "items/?page_size=2").json()
    assert items["count"] == 5 and len(items["results"]) == 2 and items["next"]
    assert items["results"][0]["wiki"] == "mea" and items["results"][0]["operation"]
    small = ops.get(run["url"] + "items/?size_class=small&state=succeeded").json()
    assert [item["wiki"] for item in small["results"]] == ["sma", "smb", "smc"]
    assert all(
        item["bytes"] > 0 and item["duration_seconds"] is not None for item in small["results"]
    )
    assert ops.get(run["url"] + "items/?state=exploded").status_code == 400

    report = ops.get(run["url"] + "report/")
    assert report["Content-Type"] == "application/json"
    summary = report.json()
    assert (summary["succeeded"], summary["failed"], summary["skipped"]) == (5, 0, 0)
    assert summary["bytes"] > 0 and len(summary["items"]) == 5

    as_csv = ops.get(run["url"] + "report/?format=csv")
    assert as_csv.status_code == 200
    assert as_csv["Content-Type"] == "text/csv; charset=utf-8"
    assert as_csv["Content-Disposition"] == f'attachment; filename="run-{run["id"]}.csv"'
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode())))
    assert [row["wiki_id"] for row in rows] == ["mea", "meb", "sma", "smb", "smc"]
    assert {row["state"] for row in rows} == {"succeeded"}
    by_accept = ops.get(run["url"] + "report/", HTTP_ACCEPT="text/csv")
    assert by_accept.content == as_csv.content
    # An error is still answered in the one JSON shape.
    missing = ops.get(API + "/runs/nosuchrun/report/?format=csv")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_halt_resume_retry_failed_and_cancel(farm_drivers, ops_user, ops):
    make_wikis(ops_user, "hla", "hlb", "hlc", "hld")
    path = database_driver().database_path(wiki_resources(Wiki.objects.get(pk="hlb")))
    moved = path.with_suffix(".moved")
    path.rename(moved)  # hlb's dump fails
    body = {
        "kind": "backup",
        "selection": {"family": "default"},
        "parallelism": {"unknown": 1},
        "halt_after_failures": 1,
    }
    url = start(ops, body).json()["url"]
    run_runs()
    halted = ops.get(url).json()
    assert halted["state"] == "halted" and "1 failures" in halted["halted_reason"]
    assert halted["progress"]["totals"]["failed"] == 1
    failed = ops.get(url + "items/?state=failed").json()["results"]
    assert [item["wiki"] for item in failed] == ["hlb"] and failed[0]["output_tail"]

    resumed = ops.post(url + "resume/", format="json")
    assert resumed.status_code == 200 and resumed.json()["state"] == "running"
    again = ops.post(url + "halt/", format="json")
    assert again.status_code == 200
    assert again.json()["halted_reason"] == "halted by opsuser"
    wrong = ops.post(url + "halt/", format="json")
    assert wrong.status_code == 409 and wrong.json()["current_state"] == "halted"

    moved.rename(path)
    retried = ops.post(url + "retry-failed/", format="json")
    assert retried.status_code == 200 and retried.json()["state"] == "running"
    run_runs()
    finished = ops.get(url).json()
    assert finished["state"] == "finished"
    assert finished["progress"]["totals"]["succeeded"] == 4

    url = start(ops, {**body, "parallelism": {"unknown": 1}}).json()["url"]
    cancelled = ops.post(url + "cancel/", {}, format="json")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["finished_at"]
    assert cancelled.json()["progress"]["totals"]["cancelled"] == 4
    no_retry = ops.post(url + "retry-failed/", format="json")
    assert no_retry.status_code == 409 and no_retry.json()["current_state"] == "cancelled"


def test_migration_run_with_a_command_and_a_rerun_that_skips(farm_drivers, ops_user, ops):
    make_wikis(ops_user, "mga", "mgb")
    params = {"migration": "2026-12-touch", "command": "echo migrating {wiki} in {dbname}"}
    url = start(ops, {"kind": "migrate", "selection": {"all": True}, "params": params}).json()[
        "url"
    ]
    run_runs()
    assert ops.get(url).json()["state"] == "finished"
    items = ops.get(url + "items/").json()["results"]
    assert [item["output_tail"] for item in items] == [
        "migrating mga in wiki_mga",
        "migrating mgb in wiki_mgb",
    ]
    rerun = start(ops, {"kind": "migrate", "selection": {"all": True}, "params": params})
    assert rerun.json()["progress"]["totals"]["skipped"] == 2


def test_inventory_gives_usage_and_size_class_to_the_wiki_api(farm_drivers, ops_user, ops):
    make_wikis(ops_user, "inva", "invb")
    never = ops.get(API + "/wikis/inva/").json()
    assert never["size_class"] == "unknown" and never["usage"] is None
    assert never["cloned_from"] is None

    created = ops.post(API + "/inventory/", {}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "inventory" and created.json()["selection"] == {"all": True}
    only_a = ops.post(API + "/inventory/", {"selection": {"wiki_ids": ["inva"]}}, format="json")
    assert only_a.json()["progress"]["total"] == 1
    run_runs()

    wiki = ops.get(API + "/wikis/inva/").json()
    assert wiki["size_class"] == "small"
    usage = wiki["usage"]
    assert usage["pages"] is not None and usage["database_bytes"] > 0
    assert usage["storage_objects"] >= 1 and usage["inspected_at"] and usage["error"] == ""
    assert set(usage) == {
        "pages",
        "database_bytes",
        "last_edit_at",
        "storage_objects",
        "storage_bytes",
        "search_documents",
        "inspected_at",
        "error",
    }
    Wiki.objects.filter(pk="invb").update(size_class="large")
    listed = ops.get(API + "/wikis/?size_class=small&size_class=large").json()["results"]
    assert {(w["id"], w["size_class"]) for w in listed} == {("inva", "small"), ("invb", "large")}
    assert ops.get(API + "/wikis/?size_class=large").json()["count"] == 1
    assert ops.get(API + "/wikis/?size_class=huge").status_code == 400


def test_restore_in_place_and_clone_through_the_api(farm_drivers, ops_user, admin_user_a, ops):
    services.wiki_create(actor=admin_user_a, wiki_id="src", family="default", sitename="Source")
    run_pending()
    backup_id = start(ops, {"kind": "backup", "selection": {"wiki_ids": ["src"]}}).json()["id"]
    run_runs()
    sources = ops.get(API + "/wikis/src/backups/").json()
    assert [(s["kind"], s["id"], s["backup_kind"]) for s in sources] == [
        ("backup", backup_id, "run")
    ]
    assert sources[0]["manifest_sha256"] and sources[0]["bytes"] > 0

    unconfirmed = ops.post(
        API + "/wikis/src/restore/", {"from": backup_id, "confirm": "nope"}, format="json"
    )
    assert unconfirmed.status_code == 400 and unconfirmed.json()["field"] == "confirm"
    unknown = ops.post(
        API + "/wikis/src/restore/",
        {"from": "20260101T000000Z-deadbeef", "confirm": "src"},
        format="json",
    )
    assert unknown.status_code == 404 and unknown.json()["field"] == "from"
    assert not Operation.objects.filter(kind="restore").exists()

    restored = ops.post(
        API + "/wikis/src/restore/", {"from": backup_id, "confirm": "src"}, format="json"
    )
    assert restored.status_code == 202, restored.content
    assert restored["Location"].endswith(f"/api/v1/operations/{restored.json()['id']}/")
    run_pending()
    assert ops.get(restored["Location"]).json()["state"] == OperationState.SUCCEEDED

    # The owner clones their own wiki; the clone is theirs too.
    alice = token_client(admin_user_a, "write")[0]
    taken = alice.post(
        API + "/wikis/src/clone/", {"from": backup_id, "new_id": "src"}, format="json"
    )
    assert taken.status_code == 400 and taken.json()["field"] == "new_id"
    cloned = alice.post(
        API + "/wikis/src/clone/",
        {"from": backup_id, "new_id": "srccopy", "sitename": "Copy"},
        format="json",
    )
    assert cloned.status_code == 202, cloned.content
    assert cloned.json()["wiki"] == "srccopy" and cloned.json()["kind"] == "clone"
    run_pending()
    clone = alice.get(API + "/wikis/srccopy/").json()
    assert clone["state"] == "active" and clone["sitename"] == "Copy"
    assert clone["cloned_from"] == {"wiki": "src", "backup": backup_id}
    assert clone["owners"] == ["alice"]
    # Restoring in place is ops' alone.
    denied = alice.post(
        API + "/wikis/src/restore/", {"from": backup_id, "confirm": "src"}, format="json"
    )
    assert denied.status_code == 403


BAD_RUNS = {
    "unknown selection": ({"selection": {"everything": True}}, "selection"),
    "two selections": ({"selection": {"all": True, "tag": "x"}}, "selection"),
    "unknown family": ({"selection": {"family": "nope"}}, "selection.family"),
    "unknown wiki": ({"selection": {"wiki_ids": ["nosuch"]}}, "selection.wiki_ids"),
    "bad wiki id": ({"selection": {"wiki_ids": ["Not An Id"]}}, "selection.wiki_ids"),
    "parallelism 0": ({"parallelism": {"small": 0}}, "parallelism.small"),
    "parallelism text": ({"parallelism": {"small": "4"}}, "parallelism.small"),
    "unknown class": ({"parallelism": {"tiny": 4}}, "parallelism.tiny"),
    "share 1.5": ({"halt_failure_share": 1.5}, "halt_failure_share"),
    "failures 0": ({"halt_after_failures": 0}, "halt_after_failures"),
    "shell command": (
        {"kind": "migrate", "params": {"migration": "m1", "command": "php x.php; rm -rf /"}},
        "params.command",
    ),
    "missing sql file": (
        {"kind": "migrate", "params": {"migration": "m1", "sql_file": "/no/such/file.sql"}},
        "params.sql_file",
    ),
    "no migration name": ({"kind": "migrate", "params": {"command": "true"}}, "params.migration"),
    "backup params": ({"params": {"migration": "m1"}}, "params"),
    "unknown kind": ({"kind": "defrag"}, "kind"),
    "unknown field": ({"priority": 1}, "priority"),
}


@pytest.mark.parametrize(("change", "field"), BAD_RUNS.values(), ids=BAD_RUNS.keys())
def test_bad_run_input_is_400_naming_the_field_and_creates_nothing(
    farm_drivers, ops_user, ops, change, field
):
    make_wikis(ops_user, "bad")
    events = AuditEvent.objects.count()
    body = {"kind": "backup", "selection": {"all": True}, **change}

    response = ops.post(API + "/runs/", body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == "invalid" and error["field"] == field and error["message"]
    assert not Run.objects.exists()
    assert AuditEvent.objects.count() == events


def test_create_replays_with_the_same_idempotency_key(farm_drivers, ops_user, ops):
    make_wikis(ops_user, "ida")
    body = {"kind": "backup", "selection": {"all": True}}
    first = start(ops, body, HTTP_IDEMPOTENCY_KEY="nightly-backup-1")
    replay = ops.post(API + "/runs/", body, format="json", HTTP_IDEMPOTENCY_KEY="nightly-backup-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"] and replay["Location"] == first["Location"]
    assert Run.objects.count() == 1
    other = ops.post(
        API + "/runs/",
        {**body, "halt_after_failures": 2},
        format="json",
        HTTP_IDEMPOTENCY_KEY="nightly-backup-1",
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_run_writes_need_an_ops_token(farm_drivers, ops_user):
    make_wikis(ops_user, "tka")
    write, _ = token_client(ops_user, "write")
    refused = write.post(
        API + "/runs/", {"kind": "backup", "selection": {"all": True}}, format="json"
    )
    assert refused.status_code == 403 and refused.json()["code"] == "token_scope"
    assert write.post(API + "/inventory/", {}, format="json").json()["code"] == "token_scope"
    # A preview changes nothing: a write token will do; reading needs only a read token.
    preview = write.post(
        API + "/runs/preview/", {"kind": "backup", "selection": {"all": True}}, format="json"
    )
    assert preview.status_code == 200
    read, _ = token_client(ops_user, "read")
    assert read.get(API + "/runs/").status_code == 200
    assert not Run.objects.filter(state=RunState.PENDING).exists()
