"""Reading and updating wikis, operations and the audit log through the API."""

from __future__ import annotations

import pytest

from farm.models import AuditEvent, Wiki
from farm.services import tag_create
from tests.api.conftest import API, session_client

pytestmark = pytest.mark.django_db


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


@pytest.fixture
def farm(wiki_factory, admin_user_a, admin_user_b, ops_user):
    tag_create(actor=ops_user, name="private")
    wiki_factory.active(admin_user_a, "alpha")
    wiki_factory.archived(admin_user_a, "beta")
    wiki_factory.active(admin_user_b, "gamma")
    session_client(ops_user).patch(API + "/wikis/alpha/", {"tags": ["private"]}, format="json")


def test_list_filters(farm, ops_user, admin_user_a):
    ops = session_client(ops_user)
    assert ids(ops.get(API + "/wikis/")) == ["alpha", "beta", "gamma"]
    assert ids(ops.get(API + "/wikis/?state=archived")) == ["beta"]
    assert ids(ops.get(API + "/wikis/?tag=private")) == ["alpha"]
    assert ids(ops.get(API + "/wikis/?owner=bob")) == ["gamma"]
    assert ids(ops.get(API + "/wikis/?family=default&q=amm")) == ["gamma"]
    assert ids(ops.get(API + "/wikis/?page_size=2")) == ["alpha", "beta"]
    # A wiki admin's list is filtered before the filters apply.
    assert ids(session_client(admin_user_a).get(API + "/wikis/?owner=bob")) == []


def test_detail_has_resources_and_latest_operation(farm, admin_user_a):
    body = session_client(admin_user_a).get(API + "/wikis/beta/").json()
    assert body["resources"]["database_name"] == "wiki_beta"
    assert body["resources"]["storage_prefix"] == "wikis/beta/"
    archive = body["resources"]["archive"]
    assert archive["database_tables"] > 0 and archive["storage_objects"] >= 1
    assert archive["archive_id"] == Wiki.objects.get(pk="beta").current_archive_id
    assert body["latest_operation"]["kind"] == "archive"
    assert body["latest_operation"]["state"] == "succeeded"
    assert body["latest_operation"]["progress"] == 1.0


def test_update_sitename_owners_tags(farm, admin_user_a, admin_user_b):
    alice = session_client(admin_user_a)
    response = alice.patch(
        API + "/wikis/alpha/",
        {"sitename": "Alpha Wiki", "owners": ["alice", "bob"], "tags": []},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["sitename"] == "Alpha Wiki"
    assert response.json()["owners"] == ["alice", "bob"] and response.json()["tags"] == []
    assert ids(session_client(admin_user_b).get(API + "/wikis/?q=alpha")) == ["alpha"]
    event = AuditEvent.objects.filter(action="wiki.update", target_id="alpha").first()
    assert event.before["sitename"] == "alpha" and event.after["owners"] == ["alice", "bob"]


def test_an_owner_can_hand_a_wiki_over(farm, admin_user_a):
    alice = session_client(admin_user_a)
    response = alice.patch(API + "/wikis/alpha/", {"owners": ["bob"]}, format="json")
    assert response.status_code == 200 and response.json()["owners"] == ["bob"]
    assert alice.get(API + "/wikis/alpha/").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"owners": []}, "owners"),
        ({"owners": ["nobody"]}, "owners"),
        ({"owners": ["audrey"]}, "owners"),  # an auditor cannot own a wiki
        ({"tags": ["nosuchtag"]}, "tags"),
        ({"sitename": "   "}, "sitename"),
        ({"state": "active"}, "state"),
    ],
)
def test_bad_updates_change_nothing(farm, admin_user_a, auditor_user, body, field):
    alice = session_client(admin_user_a)
    response = alice.patch(API + "/wikis/alpha/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    wiki = Wiki.objects.get(pk="alpha")
    assert wiki.sitename == "alpha" and list(wiki.owners.values_list("username", flat=True)) == [
        "alice"
    ]
    assert list(wiki.tags.values_list("name", flat=True)) == ["private"]


def test_operations_filter_and_detail(farm, admin_user_a):
    alice = session_client(admin_user_a)
    archives = alice.get(API + "/operations/?kind=archive").json()["results"]
    assert [op["wiki"] for op in archives] == ["beta"]
    detail = alice.get(archives[0]["url"]).json()
    assert [step["status"] for step in detail["steps"]] == ["done"] * len(detail["steps"])
    assert detail["duration_seconds"] >= 0 and detail["actor"] == "alice"
    assert {op["wiki"] for op in alice.get(API + "/operations/").json()["results"]} == {
        "alpha",
        "beta",
    }


def test_audit_filters(farm, auditor_user):
    auditor = session_client(auditor_user)
    events = auditor.get(API + "/audit-events/?wiki=beta&page_size=100").json()["results"]
    actions = {event["action"] for event in events}
    assert {"wiki.create", "operation.archive.requested", "operation.archive.succeeded"} <= actions
    assert all(e["target_id"] == "beta" or e["operation_id"] for e in events)
    by_actor = auditor.get(API + "/audit-events/?actor=bob").json()["results"]
    assert by_actor and all(event["actor"] == "bob" for event in by_actor)
    by_action = auditor.get(API + "/audit-events/?action=wiki.update").json()["results"]
    assert [event["target_id"] for event in by_action] == ["alpha"]
    latest = AuditEvent.objects.order_by("-created_at").first().created_at.isoformat()
    since = auditor.get(API + "/audit-events/", {"since": latest}).json()["results"]
    until = auditor.get(API + "/audit-events/", {"until": latest}).json()["results"]
    assert len(since) + len(until) == AuditEvent.objects.count()
    assert auditor.get(API + "/audit-events/?since=yesterday").status_code == 400
