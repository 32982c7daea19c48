"""Every edit in the Django admin writes an audit event, posted through the real change
forms: the farm's registry (saved by its services) and Django's own users and groups
(roles are groups: a role given in the admin is a security event)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User

from farm.models import AuditEvent, Family, ReservedName, Tag
from farm.roles import OPS
from provisioning import services
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_ops(ops_user):
    ops_user.is_staff = True
    ops_user.save()
    return ops_user


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-root")


def posted(client, url: str, data: dict):
    response = client.post(url, data)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else response
    )
    return response


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_registry_edits_in_the_admin_are_audited(client, staff_ops, farm_drivers):
    client.force_login(staff_ops)
    posted(client, "/admin/farm/family/add/", {"name": "docs", "database_pattern": "{id}wiki"})
    family = Family.objects.get(name="docs")
    posted(client, f"/admin/farm/family/{family.pk}/change/", {"description": "Manuals"})
    posted(client, "/admin/farm/tag/add/", {"name": "beta", "priority": 3})
    tag = Tag.objects.get(name="beta")
    posted(client, f"/admin/farm/tag/{tag.pk}/change/", {"priority": 4, "description": "B"})
    for name in ("help", "about", "news"):
        posted(client, "/admin/farm/reservedname/add/", {"name": name, "reason": "ours"})
    posted(client, "/admin/farm/reservedname/help/delete/", {"post": "yes"})
    posted(
        client,
        "/admin/farm/reservedname/",
        {"action": "delete_selected", "_selected_action": ["about", "news"], "post": "yes"},
    )
    services.wiki_create(actor=staff_ops, wiki_id="alpha", family="default", sitename="A")
    run_pending()
    posted(
        client,
        "/admin/farm/wiki/alpha/change/",
        {"sitename": "Alpha", "tags": [tag.pk], "owners": [staff_ops.pk]},
    )

    assert [e.after for e in events("family.create")] == [
        {"name": "docs", "database_pattern": "{id}wiki"}
    ]
    assert [e.after for e in events("family.update")] == [{"description": "Manuals"}]
    assert [e.after for e in events("tag.create")] == [{"name": "beta", "priority": 3}]
    assert [e.after for e in events("tag.update")] == [{"priority": 4, "description": "B"}]
    assert [e.target_id for e in events("reserved_name.add")] == ["help", "about", "news"]
    assert sorted(e.target_id for e in events("reserved_name.remove")) == ["about", "help", "news"]
    assert not ReservedName.objects.filter(name__in=["help", "about", "news"]).exists()
    (wiki_update,) = events("wiki.update")
    assert wiki_update.after == {"sitename": "Alpha", "owners": ["opsuser"], "tags": ["beta"]}
    admin_events = AuditEvent.objects.exclude(action__startswith="operation.").exclude(
        action="wiki.create"
    )
    assert all(event.actor == staff_ops for event in admin_events)


def test_user_and_group_edits_in_the_admin_are_audited(client, superuser):
    client.force_login(superuser)
    ops = Group.objects.get_or_create(name=OPS)[0]
    posted(
        client,
        "/admin/auth/user/add/",
        {"username": "carol", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
    )
    carol = User.objects.get(username="carol")
    (created,) = events("user.create")
    assert created.target_id == str(carol.pk) and created.actor == superuser
    assert created.after["username"] == "carol"
    assert "a-long-pass-phrase" not in str(created.after)

    posted(
        client,
        f"/admin/auth/user/{carol.pk}/change/",
        {
            "username": "carol",
            "is_active": "on",
            "is_staff": "on",
            "groups": [ops.pk],
            "date_joined_0": carol.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": carol.date_joined.strftime("%H:%M:%S"),
        },
    )
    (changed,) = events("user.update")
    assert changed.before == {"is_staff": False, "groups": []}
    assert changed.after == {"is_staff": True, "groups": [OPS]}

    posted(
        client,
        f"/admin/auth/user/{carol.pk}/password/",
        {"password1": "another-long-phrase", "password2": "another-long-phrase"},
    )
    (password,) = events("user.password_change")
    assert password.target_id == str(carol.pk)
    assert "another-long-phrase" not in str(password.after)

    posted(client, "/admin/auth/group/add/", {"name": "readers"})
    (group,) = events("group.create")
    assert group.after == {"name": "readers"}

    posted(client, f"/admin/auth/user/{carol.pk}/delete/", {"post": "yes"})
    (deleted,) = events("user.delete")
    assert deleted.target_id == str(carol.pk) and deleted.before["username"] == "carol"
    assert not User.objects.filter(username="carol").exists()


def test_the_wiki_form_offers_only_what_its_service_saves(client, staff_ops, farm_drivers):
    """A field the form shows but wiki_update ignores would be an edit that saves nothing
    and audits nothing: the inventory's size class, say, is read-only here."""
    services.wiki_create(actor=staff_ops, wiki_id="alpha", family="default", sitename="A")
    client.force_login(staff_ops)
    form = client.get("/admin/farm/wiki/alpha/change/").context["adminform"].form
    assert set(form.fields) == {"sitename", "tags", "owners"}


def test_every_admin_that_can_change_something_is_covered(superuser):
    """A new ModelAdmin must save through an audited service (ServiceAdmin), record Django's
    own saves (AuditedAuthAdmin), or change nothing at all."""
    from types import SimpleNamespace

    from farm.admin import AuditedAuthAdmin, ServiceAdmin

    request = SimpleNamespace(user=superuser)
    uncovered = []
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, ServiceAdmin | AuditedAuthAdmin):
            continue
        editable = {field.name for field in model._meta.fields if field.editable} - set(
            model_admin.get_readonly_fields(request)
        )
        if (
            (editable and model_admin.has_change_permission(request))
            or model_admin.has_add_permission(request)
            or model_admin.has_delete_permission(request)
        ):
            uncovered.append(model.__name__)
    assert uncovered == []
