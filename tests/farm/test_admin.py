"""The Django admin belongs to ops: usable by the ops group without model permissions,
closed to the other roles, and its lifecycle actions go through the services."""

import pytest

from farm.models import Wiki, WikiState
from provisioning import services
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_ops(ops_user):
    ops_user.is_staff = True  # what the OIDC login gives ops
    ops_user.save()
    return ops_user


def test_ops_group_sees_the_registry_without_model_permissions(client, staff_ops):
    client.force_login(staff_ops)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert b"/admin/farm/wiki/" in index.content
    assert client.get("/admin/farm/wiki/").status_code == 200
    assert client.get("/admin/provisioning/operation/").status_code == 200


def test_other_staff_roles_see_nothing(client, admin_user_a):
    admin_user_a.is_staff = True
    admin_user_a.save()
    client.force_login(admin_user_a)
    assert b"/admin/farm/wiki/" not in client.get("/admin/").content
    assert client.get("/admin/farm/wiki/").status_code == 403


def test_archive_action_goes_through_the_service(client, staff_ops, farm_drivers):
    services.wiki_create(actor=staff_ops, wiki_id="alpha", family="default", sitename="A")
    run_pending()
    client.force_login(staff_ops)
    response = client.post(
        "/admin/farm/wiki/", {"action": "archive_wikis", "_selected_action": ["alpha"]}
    )
    assert response.status_code == 302
    run_pending()
    wiki = Wiki.objects.get(pk="alpha")
    assert wiki.state == WikiState.ARCHIVED
    assert wiki.operations.filter(kind="archive", actor=staff_ops).exists()


def test_wikis_cannot_be_deleted_by_hand(client, staff_ops, farm_drivers):
    services.wiki_create(actor=staff_ops, wiki_id="alpha", family="default", sitename="A")
    client.force_login(staff_ops)
    assert client.get("/admin/farm/wiki/alpha/delete/").status_code == 403
    assert Wiki.objects.filter(pk="alpha").exists()


def test_wiki_and_tag_edits_in_the_admin_go_through_the_service_and_reach_the_export(
    client, staff_ops, farm_drivers
):
    import json

    from farm import exports, publishing
    from farm.models import AuditEvent, Tag
    from farm.services import tag_create

    tag = tag_create(actor=staff_ops, name="beta", priority=1)
    services.wiki_create(actor=staff_ops, wiki_id="alpha", family="default", sitename="A")
    run_pending()
    client.force_login(staff_ops)
    response = client.post(
        "/admin/farm/wiki/alpha/change/",
        {"sitename": "Alpha in admin", "tags": [tag.pk], "owners": [staff_ops.pk]},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = AuditEvent.objects.get(action="wiki.update", target_id="alpha")
    assert event.after["tags"] == ["beta"] and event.actor == staff_ops
    publishing.publish(respect_window=False)
    exported = json.loads(exports.wiki_file_path("alpha").read_bytes())
    assert exported["tags"] == ["beta"]
    assert exported["settings"]["wgSitename"] == "Alpha in admin"

    # A tag's priority orders its wikis' settings: the change marks them for publishing.
    response = client.post(f"/admin/farm/tag/{tag.pk}/change/", {"priority": 5, "description": ""})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Tag.objects.get(pk=tag.pk).priority == 5
    publishing.expand_marks()
    assert Wiki.objects.get(pk="alpha").export_dirty_since is not None


def test_family_tag_and_reserved_name_edits_in_the_admin_are_audited(client, staff_ops):
    from farm.models import AuditEvent, Family, ReservedName, Tag

    client.force_login(staff_ops)
    added = client.post(
        "/admin/farm/family/add/",
        {"name": "docs", "database_pattern": "{id}wiki", "description": "Docs"},
    )
    assert added.status_code == 302, added.context["adminform"].form.errors
    family = Family.objects.get(name="docs")
    assert AuditEvent.objects.filter(action="family.create", target_id=str(family.pk)).exists()
    changed = client.post(f"/admin/farm/family/{family.pk}/change/", {"description": "Manuals"})
    assert changed.status_code == 302
    assert AuditEvent.objects.filter(action="family.update").get().after == {
        "description": "Manuals"
    }
    # A family pattern the service refuses is an error on the form, and nothing is saved.
    refused = client.post(
        "/admin/farm/family/add/", {"name": "bad", "database_pattern": "no_id", "description": ""}
    )
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors
    assert not Family.objects.filter(name="bad").exists()

    assert client.post("/admin/farm/tag/add/", {"name": "beta", "priority": 3}).status_code == 302
    tag = Tag.objects.get(name="beta")
    client.post(f"/admin/farm/tag/{tag.pk}/change/", {"priority": 7, "description": ""})
    assert AuditEvent.objects.filter(action="tag.update").get().after["priority"] == 7

    assert client.post("/admin/farm/reservedname/add/", {"name": "help"}).status_code == 302
    assert AuditEvent.objects.filter(action="reserved_name.add", target_id="help").exists()
    deleted = client.post("/admin/farm/reservedname/help/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not ReservedName.objects.filter(name="help").exists()
    assert AuditEvent.objects.filter(action="reserved_name.remove", target_id="help").exists()
