"""The server-rendered UI through Django's test client, with CSRF checks on.

Every page reads through querysets filtered by the caller (another admin's wiki is a 404),
every form goes through the services, and a service's error is shown beside its field.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from farm.models import AuditEvent, ReservedName, Wiki, WikiState
from provisioning import services
from provisioning.models import Operation, OperationState, UnarchiveRequest
from tests.api.conftest import failed_create
from tests.provisioning.helpers import run_pending
from tests.ui.conftest import browser, submit

pytestmark = pytest.mark.django_db


def field_block(html: str, field: str) -> str:
    """The markup of one form field (label, input, help, errors)."""
    match = re.search(
        rf'<div class="field[^"]*">\s*<label for="id_{field}">.*?</div>', html, re.DOTALL
    )
    assert match, f"no field {field} in the page"
    return match.group(0)


# --- signing in ----------------------------------------------------------------------------


def test_pages_need_a_login(client):
    response = client.get(reverse("wiki-list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_demo_login_is_marked_and_signs_in(admin_user_a):
    client = browser()
    page = client.get(reverse("login"))
    assert b"Demo login" in page.content and b"demo-wiki-admin" in page.content
    refused = client.post(reverse("login"), {"username": "alice", "password": "pw-alice"})
    assert refused.status_code == 403  # no CSRF token
    signed_in = submit(client, reverse("login"), {"username": "alice", "password": "pw-alice"})
    assert signed_in.status_code == 302 and signed_in["Location"] == reverse("wiki-list")
    assert client.get(reverse("wiki-list")).status_code == 200


def test_wrong_password_is_refused(admin_user_a):
    client = browser()
    response = submit(client, reverse("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"enter a correct username and password" in response.content
    assert client.get(reverse("wiki-list")).status_code == 302


def test_logout_is_a_post(admin_user_a):
    client = browser(admin_user_a)
    assert client.get(reverse("logout")).status_code == 405
    assert submit(client, reverse("logout"))["Location"] == reverse("login")
    assert client.get(reverse("wiki-list")).status_code == 302


# --- create --------------------------------------------------------------------------------


def test_create_a_wiki_then_follow_it_to_active(farm_drivers, admin_user_a):
    client = browser(admin_user_a)
    assert b'id="wiki-id-status"' in client.get(reverse("wiki-create")).content
    form = {"family": "default", "wiki_id": "newwiki", "sitename": "New", "language": "en"}
    response = submit(client, reverse("wiki-create"), form)
    assert response.status_code == 302
    assert response["Location"] == reverse("wiki-detail", args=["newwiki"])
    page = client.get(response["Location"]).content.decode()
    operation = Operation.objects.get(wiki_ref="newwiki")
    assert f'data-operation-url="/api/v1/operations/{operation.pk}/"' in page
    assert 'data-step="create_database"' in page and 'http-equiv="refresh"' in page
    run_pending()
    page = client.get(response["Location"]).content.decode()
    assert "data-operation-url" not in page
    assert 'class="state state-active" data-wiki-state>active<' in page


@pytest.mark.parametrize(
    ("wiki_id", "message"),
    [("Bad-Id", "must be a lowercase letter"), ("taken", "is taken"), ("blocked", "is reserved")],
)
def test_create_form_shows_the_service_error_beside_the_id(
    farm_drivers, admin_user_a, wikis, wiki_id, message
):
    wikis.active(admin_user_a, "taken")
    ReservedName.objects.create(name="blocked")
    form = {"family": "default", "wiki_id": wiki_id, "sitename": "S", "language": "en"}
    response = submit(browser(admin_user_a), reverse("wiki-create"), form)
    assert response.status_code == 400
    block = field_block(response.content.decode(), "wiki_id")
    assert message in block and 'role="alert"' in block
    assert 'aria-invalid="true"' in block


def test_create_needs_a_wiki_admin_role(auditor_user):
    client = browser(auditor_user)
    assert client.get(reverse("wiki-create")).status_code == 403
    form = {"family": "default", "wiki_id": "sneaky", "sitename": "S", "language": "en"}
    assert submit(client, reverse("wiki-create"), form).status_code == 403
    assert not Wiki.objects.filter(pk="sneaky").exists()


def test_live_id_check_applies_the_services_rules(farm_drivers, admin_user_a, wikis):
    wikis.active(admin_user_a, "taken")
    ReservedName.objects.create(name="blocked")
    client = browser(admin_user_a)

    def check(wiki_id, family="default"):
        return client.get(reverse("check-wiki-id"), {"id": wiki_id, "family": family}).json()

    assert check("fresh") == {"id": "fresh", "available": True, "message": "fresh is free"}
    assert check("Fresh")["rule"] == r"^[a-z][a-z0-9]{1,31}$"
    assert check("taken")["rule"] == "unique" and not check("taken")["available"]
    assert check("blocked")["rule"] == "not_reserved"
    assert check("x" * 40)["available"] is False
    assert browser().get(reverse("check-wiki-id"), {"id": "x"}).status_code == 401


# --- one wiki ------------------------------------------------------------------------------


def test_another_admins_wiki_is_not_found_anywhere(farm_drivers, admin_user_a, admin_user_b, wikis):
    wikis.active(admin_user_a, "alicewiki")
    bob = browser(admin_user_b)
    for name in ("wiki-detail", "wiki-archive", "wiki-unarchive", "wiki-config", "wiki-purge"):
        assert bob.get(reverse(name, args=["alicewiki"])).status_code == 404, name
    setting = reverse("wiki-config-setting", args=["alicewiki", "wgDefaultSkin"])
    assert bob.get(setting).status_code == 404
    assert submit(bob, reverse("wiki-archive", args=["alicewiki"])).status_code == 404
    assert submit(bob, setting, {"value": "monobook", "action": "set"}).status_code == 404
    assert "alicewiki" not in bob.get(reverse("wiki-list")).content.decode()
    assert Wiki.objects.get(pk="alicewiki").state == WikiState.ACTIVE
    operation = Operation.objects.get(wiki_ref="alicewiki")
    retry = reverse("operation-action", args=[operation.pk, "retry"])
    assert submit(bob, retry).status_code == 404


def test_a_form_without_the_csrf_token_is_refused(farm_drivers, admin_user_a, wikis):
    wikis.active(admin_user_a, "alicewiki")
    response = browser(admin_user_a).post(reverse("wiki-archive", args=["alicewiki"]))
    assert response.status_code == 403
    assert Wiki.objects.get(pk="alicewiki").state == WikiState.ACTIVE


def test_archive_says_what_happens_then_archives(farm_drivers, admin_user_a, wikis):
    wikis.active(admin_user_a, "alicewiki")
    client = browser(admin_user_a)
    url = reverse("wiki-archive", args=["alicewiki"])
    confirmation = client.get(url).content.decode()
    assert "read-only" in confirmation and "drop the live database" in confirmation
    assert submit(client, url)["Location"] == reverse("wiki-detail", args=["alicewiki"])
    run_pending()
    page = client.get(reverse("wiki-detail", args=["alicewiki"])).content.decode()
    assert ">archived<" in page and "Request unarchive" in page and "Manifest sha256" in page
    again = submit(client, url)
    assert again.status_code == 409 and b"cannot archive" in again.content


def test_edit_name_and_tags_goes_through_the_service_and_reaches_the_export(
    farm_drivers, admin_user_a, ops_user, wikis
):
    import json

    from farm import exports, publishing
    from farm.services import tag_create

    tag_create(actor=ops_user, name="beta")
    wikis.active(admin_user_a, "alicewiki")
    client = browser(admin_user_a)
    url = reverse("wiki-edit", args=["alicewiki"])
    form = client.get(url)
    assert form.status_code == 200 and b'name="sitename"' in form.content
    bad = submit(client, url, {"sitename": "", "tags": ["beta"]})
    assert bad.status_code == 400
    assert submit(client, url, {"sitename": "Renamed", "tags": ["beta"]}).status_code == 302
    assert AuditEvent.objects.filter(action="wiki.update", target_id="alicewiki").exists()
    publishing.publish(respect_window=False)
    exported = json.loads(exports.wiki_file_path("alicewiki").read_bytes())
    assert exported["tags"] == ["beta"] and exported["settings"]["wgSitename"] == "Renamed"
    unknown = submit(client, url, {"sitename": "X", "tags": ["nope"]})
    assert unknown.status_code == 400 and b"nope" in unknown.content


def test_unarchive_request_needs_a_reason(farm_drivers, admin_user_a, wikis):
    wikis.archived(admin_user_a, "alicewiki")
    client = browser(admin_user_a)
    url = reverse("wiki-unarchive", args=["alicewiki"])
    empty = submit(client, url, {"reason": "   "})
    assert empty.status_code == 400
    assert "required" in field_block(empty.content.decode(), "reason")
    assert submit(client, url, {"reason": "term starts"}).status_code == 302
    page = client.get(reverse("wiki-detail", args=["alicewiki"])).content.decode()
    assert "Unarchive requested" in page and "term starts" in page
    twice = submit(client, url, {"reason": "again"})
    assert twice.status_code == 409 and b"already has a pending" in twice.content


def test_failed_create_can_be_retried_from_the_page(farm_drivers, tmp_path, admin_user_a):
    operation = failed_create(admin_user_a, "brokenwiki", tmp_path)
    client = browser(admin_user_a)
    page = client.get(reverse("wiki-detail", args=["brokenwiki"])).content.decode()
    assert "Failed at <strong>create_database</strong>" in page and "Abandon" in page
    response = submit(client, reverse("operation-action", args=[operation.pk, "retry"]))
    assert response["Location"] == reverse("wiki-detail", args=["brokenwiki"])
    operation.refresh_from_db()
    assert operation.state == OperationState.PENDING


# --- configuration -------------------------------------------------------------------------


def test_config_shows_provenance_and_edits_go_through_the_service(
    farm_drivers, admin_user_a, wikis
):
    wikis.active(admin_user_a, "alicewiki")
    client = browser(admin_user_a)
    overview = client.get(reverse("wiki-config", args=["alicewiki"])).content.decode()
    assert "wgDefaultSkin" in overview and "layer-wiki" in overview  # wgSitename's layer
    url = reverse("wiki-config-setting", args=["alicewiki", "wgDefaultSkin"])
    bad = submit(client, url, {"value": "nosuchskin", "action": "set"})
    assert bad.status_code == 400
    assert "Choose one of the listed values" in field_block(bad.content.decode(), "value")
    assert submit(client, url, {"value": "monobook", "action": "set"}).status_code == 302
    page = client.get(url).content.decode()
    assert "wiki:alicewiki" in page and "monobook" in page
    assert submit(client, url, {"action": "unset"}).status_code == 302
    assert AuditEvent.objects.filter(action="config.unset", actor=admin_user_a).exists()


def test_ops_only_settings_are_read_only_for_wiki_admins(farm_drivers, admin_user_a, wikis):
    wikis.active(admin_user_a, "alicewiki")
    client = browser(admin_user_a)
    url = reverse("wiki-config-setting", args=["alicewiki", "wgEnableUploads"])
    assert b"Only ops change this setting" in client.get(url).content
    assert submit(client, url, {"value": "true", "action": "set"}).status_code == 403


# --- ops -----------------------------------------------------------------------------------


def test_ops_pages_are_closed_to_wiki_admins(farm_drivers, admin_user_a, wikis):
    wikis.archived(admin_user_a, "alicewiki")
    client = browser(admin_user_a)
    for url in (reverse("unarchive-queue"), reverse("all-wikis"), reverse("audit-log")):
        assert client.get(url).status_code == 403, url
    purge = reverse("wiki-purge", args=["alicewiki"])
    assert client.get(purge).status_code == 403
    assert submit(client, purge, {"confirm": "alicewiki"}).status_code == 403
    assert Wiki.objects.get(pk="alicewiki").state == WikiState.ARCHIVED


def test_auditors_read_the_queue_but_cannot_decide(farm_drivers, admin_user_a, auditor_user, wikis):
    wikis.archived(admin_user_a, "alicewiki")
    request = services.unarchive_request(actor=admin_user_a, wiki_id="alicewiki", reason="r")
    client = browser(auditor_user)
    page = client.get(reverse("unarchive-queue")).content.decode()
    assert "alicewiki" in page and "Approve" not in page
    approve = reverse("unarchive-decide", args=[request.pk, "approve"])
    assert submit(client, approve).status_code == 403


def test_ops_approve_and_deny_from_the_queue(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.archived(admin_user_a, "first")
    wikis.archived(admin_user_a, "second")
    approved = services.unarchive_request(actor=admin_user_a, wiki_id="first", reason="r1")
    denied = services.unarchive_request(actor=admin_user_a, wiki_id="second", reason="r2")
    client = browser(ops_user)
    queue = client.get(reverse("unarchive-queue")).content.decode()
    assert "r1" in queue and "r2" in queue
    response = submit(client, reverse("unarchive-decide", args=[approved.pk, "approve"]))
    assert response["Location"] == reverse("wiki-detail", args=["first"])
    deny = reverse("unarchive-decide", args=[denied.pk, "deny"])
    assert submit(client, deny, {"note": "not now"})["Location"] == reverse("unarchive-queue")
    run_pending()
    assert Wiki.objects.get(pk="first").state == WikiState.ACTIVE
    assert UnarchiveRequest.objects.get(pk=denied.pk).decision_note == "not now"
    assert "not now" in client.get(reverse("unarchive-queue")).content.decode()


def test_two_person_rule_refusal_is_explained(
    settings, farm_drivers, admin_user_a, ops_user, django_user_model, wikis
):
    settings.FARM_UNARCHIVE_TWO_PERSON_RULE = True
    wikis.archived(admin_user_a, "alicewiki")
    request = services.unarchive_request(actor=ops_user, wiki_id="alicewiki", reason="mine")
    client = browser(ops_user)
    response = submit(client, reverse("unarchive-decide", args=[request.pk, "approve"]))
    assert response.status_code == 403
    page = response.content.decode()
    assert f'id="request-{request.pk}-error"' in page and "two-person rule is on" in page
    assert Wiki.objects.get(pk="alicewiki").state == WikiState.ARCHIVED


def test_purge_needs_the_typed_id_and_ends_with_a_receipt(
    farm_drivers, admin_user_a, ops_user, wikis
):
    wiki = wikis.archived(admin_user_a, "alicewiki")
    client = browser(ops_user)
    url = reverse("wiki-purge", args=["alicewiki"])
    page = client.get(url).content.decode()
    assert "cannot be undone" in page and wiki.database_name in page
    assert wiki.current_archive_id in page
    wrong = submit(client, url, {"confirm": "alice"})
    assert wrong.status_code == 400
    assert "does not match" in field_block(wrong.content.decode(), "confirm")
    assert submit(client, url, {"confirm": "alicewiki"}).status_code == 302
    run_pending()
    detail = client.get(reverse("wiki-detail", args=["alicewiki"])).content.decode()
    assert 'id="purge-receipt"' in detail and "never given out again" in detail
    assert client.get(url)["Location"] == reverse("wiki-detail", args=["alicewiki"])


def test_all_wikis_filters(farm_drivers, admin_user_a, admin_user_b, ops_user, wikis):
    wikis.active(admin_user_a, "alpha")
    wikis.archived(admin_user_b, "beta")
    client = browser(ops_user)
    everything = client.get(reverse("all-wikis")).content.decode()
    assert "alpha" in everything and "beta" in everything
    archived = client.get(reverse("all-wikis"), {"state": "archived"}).content.decode()
    assert ">beta<" in archived and ">alpha<" not in archived
    by_owner = client.get(reverse("all-wikis"), {"owner": "alice"}).content.decode()
    assert ">alpha<" in by_owner and ">beta<" not in by_owner
    mine = browser(admin_user_a).get(reverse("wiki-list"), {"q": "alp"}).content.decode()
    assert ">alpha<" in mine and "archive" in mine


def test_audit_log_filters(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alpha")
    wikis.archived(admin_user_a, "beta")
    client = browser(ops_user)
    page = client.get(reverse("audit-log"), {"action": "wiki.create"}).content.decode()
    assert "<code>alpha</code>" in page and "<code>beta</code>" in page
    only_beta = client.get(reverse("audit-log"), {"wiki": "beta"}).content.decode()
    assert "<code>alpha</code>" not in only_beta
    bad_date = client.get(reverse("audit-log"), {"since": "yesterday"})
    assert bad_date.status_code == 200 and b"Enter a valid date" in bad_date.content


def test_unknown_pages_are_html_and_api_paths_json(admin_user_a):
    client = browser(admin_user_a)
    page = client.get("/no/such/page/")
    assert page.status_code == 404 and b"<h1>Not found</h1>" in page.content
    api = client.get("/api/v1/no-such-endpoint/")
    assert api.status_code == 404 and api.json()["code"] == "not_found"
