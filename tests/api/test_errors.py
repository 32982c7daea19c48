"""Bad input gets a clear JSON error with a stable code and changes nothing; a transition
from the wrong state is a 409 naming the current state."""

from __future__ import annotations

import json

import pytest

from farm.models import AuditEvent, Tag, Wiki
from provisioning.models import Operation
from tests.api.conftest import API, session_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(admin_user_a):
    return session_client(admin_user_a)


def snapshot():
    return (Wiki.objects.count(), Operation.objects.count(), AuditEvent.objects.count())


def raw_post(client, path, body: bytes | str, content_type="application/json"):
    return client.post(API + path, body, content_type=content_type)


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    if field:
        assert body["field"] == field
        assert body["errors"][field]


def test_malformed_json(farm_drivers, alice):
    before = snapshot()
    assert_error(raw_post(alice, "/wikis/", '{"id": "alpha",'), 400, "malformed_json")
    assert snapshot() == before


def test_not_an_object(farm_drivers, alice):
    assert_error(raw_post(alice, "/wikis/", "[1, 2]"), 400, "invalid")


def test_form_bodies_are_refused(farm_drivers, alice):
    response = raw_post(
        alice, "/wikis/", "id=alpha&sitename=A", "application/x-www-form-urlencoded"
    )
    assert_error(response, 415, "unsupported_media_type")
    assert not Wiki.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": 12345, "sitename": "A"}, "id"),
        ({"id": "alpha", "sitename": ["A"]}, "sitename"),
        ({"id": "alpha", "sitename": "A", "tags": "private"}, "tags"),
        ({"id": "alpha", "sitename": "A", "tags": [1]}, "tags.0"),
        ({"id": "alpha", "sitename": "A", "language": None}, "language"),
        ({"sitename": "A"}, "id"),
    ],
)
def test_wrong_types_and_missing_fields(farm_drivers, alice, body, field):
    before = snapshot()
    assert_error(alice.post(API + "/wikis/", body, format="json"), 400, "invalid", field)
    assert snapshot() == before


def test_unknown_fields_are_rejected(farm_drivers, alice):
    body = {"id": "alpha", "sitename": "A", "owner": "mallory"}
    assert_error(alice.post(API + "/wikis/", body, format="json"), 400, "invalid", "owner")
    assert not Wiki.objects.exists()


@pytest.mark.parametrize(
    ("wiki_id", "rule"),
    [
        ("Alpha", r"^[a-z][a-z0-9]{1,31}$"),
        ("a", r"^[a-z][a-z0-9]{1,31}$"),
        ("x" * 33, r"^[a-z][a-z0-9]{1,31}$"),
        ("wiki_1", r"^[a-z][a-z0-9]{1,31}$"),
        ("www", "not_reserved"),
    ],
)
def test_ids_breaking_the_rules(farm_drivers, alice, wiki_id, rule):
    before = snapshot()
    response = alice.post(API + "/wikis/", {"id": wiki_id, "sitename": "A"}, format="json")
    # The service names the field wiki_id; the API calls it id, as in its body.
    assert_error(response, 400, "invalid", "id")
    assert response.json()["rule"] == rule
    assert snapshot() == before


@pytest.mark.parametrize("depth", [33, 500, 1000, 100_000])
@pytest.mark.parametrize(
    "path", ["/wikis/", "/config/blocks/default/settings/wgRightsText/", "/tokens/"]
)
def test_deeply_nested_json_is_400_not_500(farm_drivers, alice, path, depth):
    before = snapshot()
    body = "[" * depth + "]" * depth
    method = alice.put if "settings" in path else alice.post
    response = method(API + path, body, content_type="application/json")
    assert_error(response, 400, "malformed_json")
    assert "nested deeper" in response.json()["message"]
    assert snapshot() == before


def test_brackets_inside_strings_are_not_nesting(farm_drivers, alice):
    response = raw_post(alice, "/wikis/", json.dumps({"id": "alpha", "sitename": "[" * 100}))
    assert response.status_code == 202, response.content


def test_oversized_body_is_413(farm_drivers, alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"id": "alpha", "sitename": "A" * 2000})
    assert_error(raw_post(alice, "/wikis/", body), 413, "body_too_large")
    assert not Wiki.objects.exists()


def test_unknown_and_malformed_ids_in_paths_are_404(farm_drivers, alice):
    for path in (
        "/wikis/nosuch/",
        "/wikis/NOT!valid/",
        "/operations/not-a-uuid/",
        "/operations/00000000-0000-0000-0000-000000000000/",
        "/unarchive-requests/abc/",
    ):
        assert_error(alice.get(API + path), 404, "not_found")


def test_invalid_filter_values_are_400(farm_drivers, alice):
    assert_error(alice.get(API + "/wikis/?state=sleeping"), 400, "invalid", "state")
    assert_error(alice.get(API + "/wikis/?page=99"), 404, "not_found")


def test_put_is_not_offered(wiki_factory, admin_user_a, alice):
    wiki_factory.active(admin_user_a, "alpha")
    response = alice.put(API + "/wikis/alpha/", {"sitename": "B"}, format="json")
    assert_error(response, 405, "method_not_allowed")


def test_purge_needs_the_typed_confirmation(wiki_factory, admin_user_a, ops_user):
    wiki_factory.archived(admin_user_a, "alpha")
    ops = session_client(ops_user)
    assert_error(
        ops.post(API + "/wikis/alpha/purge/", {}, format="json"), 400, "invalid", "confirm"
    )
    wrong = ops.post(API + "/wikis/alpha/purge/", {"confirm": "beta"}, format="json")
    assert_error(wrong, 400, "invalid", "confirm")
    assert wrong.json()["rule"] == "equals_wiki_id"
    assert Wiki.objects.get(pk="alpha").state == "archived"


# --- wrong state ---------------------------------------------------------------------------


def test_archive_while_provisioning_is_409_operation_in_progress(farm_drivers, alice):
    assert (
        alice.post(API + "/wikis/", {"id": "alpha", "sitename": "A"}, format="json").status_code
        == 202
    )
    response = alice.post(API + "/wikis/alpha/archive/", {}, format="json")
    assert_error(response, 409, "operation_in_progress")


@pytest.mark.parametrize(
    ("state", "path", "body", "current"),
    [
        ("archived", "/wikis/alpha/archive/", {}, "archived"),
        ("active", "/unarchive-requests/", {"wiki": "alpha", "reason": "why"}, "active"),
    ],
)
def test_wrong_state_names_the_current_state(
    wiki_factory, admin_user_a, alice, state, path, body, current
):
    getattr(wiki_factory, state)(admin_user_a, "alpha")
    before = snapshot()
    response = alice.post(API + path, body, format="json")
    assert_error(response, 409, "wrong_state")
    assert response.json()["current_state"] == current
    assert snapshot() == before


def test_deciding_twice_is_409(wiki_factory, admin_user_a, ops_user, alice):
    wiki_factory.archived(admin_user_a, "alpha")
    request_id = alice.post(
        API + "/unarchive-requests/", {"wiki": "alpha", "reason": "x"}, format="json"
    ).json()["id"]
    ops = session_client(ops_user)
    assert (
        ops.post(API + f"/unarchive-requests/{request_id}/deny/", {}, format="json").status_code
        == 200
    )
    again = ops.post(API + f"/unarchive-requests/{request_id}/approve/", {}, format="json")
    assert_error(again, 409, "wrong_state")
    assert again.json()["current_state"] == "denied"


def test_retry_of_a_running_operation_is_409(farm_drivers, alice):
    operation = alice.post(API + "/wikis/", {"id": "alpha", "sitename": "A"}, format="json").json()
    response = alice.post(API + f"/operations/{operation['id']}/retry/", {}, format="json")
    assert_error(response, 409, "wrong_state")
    assert response.json()["current_state"] == "pending"


def test_a_duplicate_tag_is_400_and_changes_nothing(ops_user):
    ops = session_client(ops_user)
    assert ops.post(API + "/tags/", {"name": "private"}, format="json").status_code == 201
    again = ops.post(API + "/tags/", {"name": "private", "priority": 3}, format="json")
    assert_error(again, 400, "invalid", "name")
    assert Tag.objects.get(name="private").priority == 0
    assert_error(
        ops.post(API + "/tags/", {"name": "x", "priority": "3"}, format="json"),
        400,
        "invalid",
        "priority",
    )
