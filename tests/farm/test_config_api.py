"""The configuration API: effective config, per-setting writes, history, diff, rollback and
the catalog, with the services' rules and the one error shape."""

import pytest
from rest_framework.test import APIClient

from farm.models import ConfigVersion, Wiki
from provisioning import services

pytestmark = pytest.mark.django_db

API = "/api/v1/config"


@pytest.fixture
def wiki(admin_user_a):
    services.wiki_create(actor=admin_user_a, wiki_id="apiwiki", family="default", sitename="API")
    return Wiki.objects.get(pk="apiwiki")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_write_read_history_diff_rollback(wiki, admin_user_a, ops_user):
    admin = client_for(admin_user_a)
    ops = client_for(ops_user)
    url = f"{API}/blocks/wiki/apiwiki/settings/wgRightsText/"
    first = admin.put(url, {"value": "CC0"}, format="json")
    assert first.status_code == 200, first.json()
    assert first.json()["changed"] is True
    v1 = first.json()["version"]["version"]
    assert admin.put(url, {"value": "CC0"}, format="json").json()["changed"] is False
    default = ops.put(f"{API}/blocks/default/settings/wgRightsText/", {"value": "D"}, format="json")
    assert default.status_code == 200
    v2 = admin.put(url, {"value": "CC BY"}, format="json").json()["version"]["version"]

    effective = admin.get(f"{API}/effective/apiwiki/").json()
    assert effective["settings"]["wgRightsText"]["value"] == "CC BY"
    assert effective["settings"]["wgRightsText"]["layer"] == "wiki"
    assert [b["layer"] for b in effective["chain"]] == ["default", "family", "wiki"]
    block = admin.get(f"{API}/blocks/wiki/apiwiki/").json()
    assert block["version"] == v2 and block["values"]["wgRightsText"] == "CC BY"
    assert block["values"]["wgSitename"] == "API"

    history = admin.get(f"{API}/history/", {"layer": "wiki", "target": "apiwiki"}).json()
    assert [row["version"] for row in history["results"]] == [v2, v1]
    assert (
        history["results"][0]["before"] == "CC0" and history["results"][0]["actor_name"] == "alice"
    )
    diff = admin.get(f"{API}/blocks/wiki/apiwiki/diff/", {"from": v1, "to": v2}).json()
    assert diff["changes"] == {"wgRightsText": {"from": "CC0", "to": "CC BY"}}
    assert admin.get(f"{API}/blocks/wiki/apiwiki/diff/", {"from": "x", "to": v2}).status_code == 400

    rollback = admin.post(f"{API}/blocks/wiki/apiwiki/rollback/", {"version": v1}, format="json")
    assert rollback.status_code == 200, rollback.json()
    assert rollback.json()["versions"][0]["rollback_to"] == v1
    assert rollback.json()["block"]["values"]["wgRightsText"] == "CC0"

    deleted = admin.delete(url)
    assert deleted.status_code == 200 and deleted.json()["version"]["after"] is None
    assert admin.get(f"{API}/effective/apiwiki/").json()["settings"]["wgRightsText"]["value"] == "D"


def test_refusals_have_the_error_shape_and_change_nothing(
    wiki, admin_user_a, admin_user_b, auditor_user
):
    admin = client_for(admin_user_a)
    url = f"{API}/blocks/wiki/apiwiki/settings/wgDefaultSkin/"
    bad = admin.put(url, {"value": "nonesuch"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid"
    assert bad.json()["field"] == "wgDefaultSkin"
    assert bad.json()["rule"].startswith("enum:")
    assert admin.put(url, {"value": "vector", "extra": 1}, format="json").status_code == 400
    ops_only = admin.put(
        f"{API}/blocks/wiki/apiwiki/settings/wgRawHtml/", {"value": True}, format="json"
    )
    assert ops_only.status_code == 403 and ops_only.json()["rule"] == "ops_only"
    family = admin.put(
        f"{API}/blocks/family/default/settings/wgRightsText/", {"value": "x"}, format="json"
    )
    assert family.status_code == 403
    assert client_for(admin_user_b).get(f"{API}/effective/apiwiki/").status_code == 404
    auditor = client_for(auditor_user)
    assert auditor.get(f"{API}/effective/apiwiki/").status_code == 200
    assert auditor.put(url, {"value": "vector"}, format="json").status_code == 403
    unknown = admin.put(f"{API}/blocks/wiki/apiwiki/settings/wgNope/", {"value": 1}, format="json")
    assert unknown.status_code == 404 and unknown.json()["field"] == "setting"
    assert not ConfigVersion.objects.exists()


def test_catalog_list_and_ops_create(db, ops_user, admin_user_a):
    listing = client_for(admin_user_a).get(f"{API}/catalog/", {"page_size": 500}).json()
    assert listing["count"] >= 30
    assert {"name", "type", "schema", "default", "merge_strategy", "editable_by"} <= set(
        listing["results"][0]
    )
    body = {"name": "wgExternalLinkTarget", "type": "string", "schema": {"enum": ["_blank"]}}
    assert client_for(admin_user_a).post(f"{API}/catalog/", body, format="json").status_code == 403
    created = client_for(ops_user).post(f"{API}/catalog/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["schema"] == {"type": "string", "enum": ["_blank"]}
    detail = client_for(admin_user_a).get(f"{API}/catalog/wgExternalLinkTarget/")
    assert detail.json()["editable_by"] == "ops"
    again = client_for(ops_user).post(f"{API}/catalog/", body, format="json")
    assert again.status_code == 400 and again.json()["rule"] == "unique"
