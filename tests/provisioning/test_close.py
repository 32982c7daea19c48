"""Close and reopen: a closed wiki stays served read-only with its reason, keeps its
database, is listed as closed, and can still be archived; who may close is a farm setting.
Archive takes the wiki offline (503) before its database is dropped."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from farm import exports
from farm.errors import InvalidInput, NotAllowed, WrongState
from farm.models import AuditEvent, Wiki, WikiState
from provisioning import services
from provisioning.drivers import database_driver
from provisioning.models import OperationKind
from provisioning.steps import STEP_FUNCTIONS, wiki_resources
from tests.provisioning.helpers import run_pending
from tests.ui.conftest import browser, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha(farm_drivers, admin_user_a):
    services.wiki_create(actor=admin_user_a, wiki_id="alpha", family="default", sitename="A")
    run_pending()
    return Wiki.objects.get(pk="alpha")


def exported(wiki_id: str) -> dict:
    return json.loads(exports.wiki_file_path(wiki_id).read_bytes())


def closed_list() -> str:
    return (exports.export_dir() / "dblists" / "closed.dblist").read_text()


def test_ops_close_and_reopen_a_wiki(alpha, ops_user):
    operation = services.wiki_close(actor=ops_user, wiki_id="alpha", reason="Nobody edits it")
    assert operation.kind == OperationKind.CLOSE
    run_pending()
    wiki = Wiki.objects.get(pk="alpha")
    assert wiki.state == WikiState.CLOSED and wiki.closed_reason == "Nobody edits it"
    file = exported("alpha")
    assert file["state"] == "closed" and file["read_only"] is True
    assert file["read_only_reason"] == "Nobody edits it"
    assert "alpha" in closed_list().split()
    assert database_driver().inspect(wiki_resources(wiki)).exists  # it keeps its database
    assert AuditEvent.objects.filter(action="wiki.close", target_id="alpha").exists()

    services.wiki_reopen(actor=ops_user, wiki_id="alpha")
    run_pending()
    wiki = Wiki.objects.get(pk="alpha")
    assert wiki.state == WikiState.ACTIVE and wiki.closed_reason == ""
    assert exported("alpha")["read_only"] is False
    assert "alpha" not in closed_list().split()
    assert AuditEvent.objects.filter(action="wiki.reopen", target_id="alpha").exists()


def test_who_may_close(alpha, admin_user_a, admin_user_b, settings):
    with pytest.raises(NotAllowed, match="FARM_OWNERS_MAY_CLOSE"):
        services.wiki_close(actor=admin_user_a, wiki_id="alpha", reason="mine")
    settings.FARM_OWNERS_MAY_CLOSE = True
    with pytest.raises(Exception, match="not found"):
        services.wiki_close(actor=admin_user_b, wiki_id="alpha", reason="not mine")
    services.wiki_close(actor=admin_user_a, wiki_id="alpha", reason="mine")
    assert Wiki.objects.get(pk="alpha").state == WikiState.CLOSED


def test_bad_close_requests_change_nothing(alpha, ops_user):
    with pytest.raises(InvalidInput) as error:
        services.wiki_close(actor=ops_user, wiki_id="alpha", reason="")
    assert error.value.field == "reason"
    with pytest.raises(InvalidInput):
        services.wiki_close(actor=ops_user, wiki_id="alpha", reason="x" * 501)
    with pytest.raises(WrongState, match="reopen needs closed"):
        services.wiki_reopen(actor=ops_user, wiki_id="alpha")
    assert Wiki.objects.get(pk="alpha").state == WikiState.ACTIVE


def test_a_closed_wiki_can_be_archived_and_comes_back_writable(alpha, ops_user, admin_user_a):
    services.wiki_close(actor=ops_user, wiki_id="alpha", reason="Frozen")
    run_pending()
    services.wiki_archive(actor=admin_user_a, wiki_id="alpha")
    run_pending()
    assert Wiki.objects.get(pk="alpha").state == WikiState.ARCHIVED
    request = services.unarchive_request(actor=admin_user_a, wiki_id="alpha", reason="back")
    services.unarchive_approve(actor=ops_user, request_id=request.pk)
    run_pending()
    wiki = Wiki.objects.get(pk="alpha")
    assert wiki.state == WikiState.ACTIVE and not wiki.offline
    assert exported("alpha")["read_only"] is False


def test_archive_goes_offline_before_the_database_is_dropped(alpha, admin_user_a, monkeypatch):
    seen = []
    real_drop = STEP_FUNCTIONS[OperationKind.ARCHIVE]["drop_database"]

    def look_then_drop(ctx):
        seen.append(exported("alpha"))
        return real_drop(ctx)

    monkeypatch.setitem(STEP_FUNCTIONS[OperationKind.ARCHIVE], "drop_database", look_then_drop)
    services.wiki_archive(actor=admin_user_a, wiki_id="alpha")
    run_pending()
    assert seen[0]["offline"] is True and seen[0]["state"] == "archiving"
    assert exported("alpha")["state"] == "archived"


def test_close_and_reopen_through_the_api_cli_ui_and_admin(alpha, ops_user, client):
    api = APIClient()
    api.force_authenticate(ops_user)
    bad = api.post("/api/v1/wikis/alpha/close/", {}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "reason"
    response = api.post("/api/v1/wikis/alpha/close/", {"reason": "By API"}, format="json")
    assert response.status_code == 202, response.content
    run_pending()
    assert api.get("/api/v1/wikis/alpha/").json()["closed_reason"] == "By API"
    assert api.post("/api/v1/wikis/alpha/reopen/", {}, format="json").status_code == 202
    run_pending()

    call_command("wiki", "--actor", "opsuser", "close", "alpha", "--reason", "By CLI")
    run_pending()
    assert exported("alpha")["read_only_reason"] == "By CLI"
    call_command("wiki", "--actor", "opsuser", "reopen", "alpha")
    run_pending()

    ui = browser(ops_user)
    page = ui.get(reverse("wiki-detail", args=["alpha"])).content.decode()
    assert reverse("wiki-close", args=["alpha"]) in page
    assert submit(ui, reverse("wiki-close", args=["alpha"]), {"reason": ""}).status_code == 400
    done = submit(ui, reverse("wiki-close", args=["alpha"]), {"reason": "By UI"})
    assert done.status_code == 302
    run_pending()
    assert "By UI" in ui.get(reverse("wiki-detail", args=["alpha"])).content.decode()
    assert submit(ui, reverse("wiki-reopen", args=["alpha"])).status_code == 302
    run_pending()

    ops_user.is_staff = True
    ops_user.save()
    client.force_login(ops_user)
    client.post("/admin/farm/wiki/", {"action": "close_wikis", "_selected_action": ["alpha"]})
    run_pending()
    assert Wiki.objects.get(pk="alpha").state == WikiState.CLOSED
    client.post("/admin/farm/wiki/", {"action": "reopen_wikis", "_selected_action": ["alpha"]})
    run_pending()
    assert Wiki.objects.get(pk="alpha").state == WikiState.ACTIVE
