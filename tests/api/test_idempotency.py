"""Idempotency-Key: a repeated POST replays the first answer and starts nothing new."""

from __future__ import annotations

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator

from farm import config
from farm.api.idempotency import IdempotentPostMixin
from farm.models import ConfigVersion, IdempotencyRecord, SettingDefinition, Wiki
from provisioning.models import Operation, UnarchiveRequest
from tests.api.conftest import API, example_path, session_client, token_client

pytestmark = pytest.mark.django_db


def post(client, path, body, key):
    return client.post(API + path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_body_replays_the_first_response(farm_drivers, admin_user_a):
    client = session_client(admin_user_a)
    body = {"id": "alpha", "sitename": "Alpha"}
    first = post(client, "/wikis/", body, "create-alpha-1")
    again = post(client, "/wikis/", body, "create-alpha-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert Operation.objects.filter(wiki_ref="alpha").count() == 1


def test_a_replay_survives_the_state_moving_on(wiki_factory, admin_user_a):
    """The replay is the stored first answer, not a new call that would now be a 409."""
    wiki_factory.active(admin_user_a, "alpha")
    client = session_client(admin_user_a)
    first = post(client, "/wikis/alpha/archive/", {}, "archive-alpha")
    again = post(client, "/wikis/alpha/archive/", {}, "archive-alpha")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert Operation.objects.filter(wiki_ref="alpha", kind="archive").count() == 1
    without_key = client.post(API + "/wikis/alpha/archive/", {}, format="json")
    assert without_key.status_code == 409


def test_same_key_with_another_body_is_422_and_starts_nothing(farm_drivers, admin_user_a):
    client = session_client(admin_user_a)
    assert post(client, "/wikis/", {"id": "alpha", "sitename": "A"}, "k1").status_code == 202
    reused = post(client, "/wikis/", {"id": "beta", "sitename": "B"}, "k1")
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert not Wiki.objects.filter(pk="beta").exists()


def test_same_key_on_another_endpoint_is_422(wiki_factory, admin_user_a):
    wiki_factory.archived(admin_user_a, "alpha")
    client = session_client(admin_user_a)
    request = {"wiki": "alpha", "reason": "needed"}
    assert post(client, "/unarchive-requests/", request, "k2").status_code == 201
    assert post(client, "/wikis/alpha/archive/", {}, "k2").status_code == 422
    assert UnarchiveRequest.objects.count() == 1


def test_keys_belong_to_their_user(farm_drivers, admin_user_a, admin_user_b):
    body_a = {"id": "alpha", "sitename": "A"}
    body_b = {"id": "beta", "sitename": "B"}
    assert post(session_client(admin_user_a), "/wikis/", body_a, "shared").status_code == 202
    assert post(session_client(admin_user_b), "/wikis/", body_b, "shared").status_code == 202
    assert set(Wiki.objects.values_list("id", flat=True)) == {"alpha", "beta"}


def test_an_error_answer_is_replayed_too(farm_drivers, admin_user_a):
    client = session_client(admin_user_a)
    first = post(client, "/wikis/", {"id": "www", "sitename": "W"}, "k3")
    assert first.status_code == 400 and first.json()["rule"] == "not_reserved"
    again = post(client, "/wikis/", {"id": "www", "sitename": "W"}, "k3")
    assert again.status_code == 400 and again.json() == first.json()


def test_body_key_order_and_spacing_do_not_matter(farm_drivers, admin_user_a):
    client = session_client(admin_user_a)
    headers = {"content_type": "application/json", "HTTP_IDEMPOTENCY_KEY": "k4"}
    first = client.post(API + "/wikis/", '{"id": "alpha", "sitename": "A"}', **headers)
    again = client.post(API + "/wikis/", '{"sitename":"A","id":"alpha"}', **headers)
    assert first.status_code == again.status_code == 202
    assert Operation.objects.count() == 1


def test_a_token_secret_is_not_stored_for_replay(admin_user_a):
    client = session_client(admin_user_a)
    first = post(client, "/tokens/", {"name": "ci", "scope": "read"}, "k5")
    assert first.status_code == 201 and first.json()["token"].startswith("wft_")
    record = IdempotencyRecord.objects.get(key="k5")
    assert "token" not in record.response_body
    assert first.json()["token"] not in str(record.response_body)
    again = post(client, "/tokens/", {"name": "ci", "scope": "read"}, "k5")
    assert again.status_code == 201 and "token" not in again.json()
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("key", ["", "x" * 129, "has space", "ümlaut"])
def test_a_malformed_key_is_400(farm_drivers, admin_user_a, key):
    client = session_client(admin_user_a)
    response = client.post(
        API + "/wikis/",
        {"id": "alpha", "sitename": "A"},
        format="json",
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not Wiki.objects.exists()


def test_a_replay_does_not_count_against_the_rate_limit(farm_drivers, admin_user_a, settings):
    settings.FARM_API_CREATE_RATE = "1/hour"
    client, _ = token_client(admin_user_a, "write")
    body = {"id": "alpha", "sitename": "A"}
    assert post(client, "/wikis/", body, "k6").status_code == 202
    assert post(client, "/wikis/", body, "k6").status_code == 202
    assert post(client, "/wikis/", {"id": "beta", "sitename": "B"}, "k7").status_code == 429


def test_config_writes_by_post_replay_too(db, ops_user):
    client = session_client(ops_user)
    config.config_set(actor=ops_user, layer="default", setting="wgRCMaxAge", value=86400)
    rollback = {"version": 0}
    first = post(client, "/config/blocks/default/rollback/", rollback, "k8")
    again = post(client, "/config/blocks/default/rollback/", rollback, "k8")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert ConfigVersion.objects.count() == 2  # the set and one rollback, not two
    setting = {"name": "wgExternalLinkTarget", "type": "string", "schema": {"enum": ["_blank"]}}
    assert post(client, "/config/catalog/", setting, "k9").status_code == 201
    assert post(client, "/config/catalog/", setting, "k9").status_code == 201
    assert post(client, "/config/catalog/", {**setting, "type": "integer"}, "k9").status_code == 422
    assert SettingDefinition.objects.filter(name="wgExternalLinkTarget").count() == 1


def test_every_documented_post_honours_the_key():
    """The schema promises Idempotency-Key on every POST; each view must keep the promise."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    posts = {path: ops["post"] for path, ops in schema["paths"].items() if "post" in ops}
    assert len(posts) >= 10
    for path, operation in posts.items():
        view = resolve(example_path(path, operation)).func
        assert issubclass(view.cls, IdempotentPostMixin), path
