"""Registry writes that are not lifecycle operations: families, tags, reserved names."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from farm import policies, publishing
from farm.audit import audit
from farm.config import Block
from farm.errors import InvalidInput, NotFound, WrongState
from farm.models import ConfigLayer, Family, ReservedName, Tag, Wiki, WikiState
from farm.roles import may_create_wikis
from farm.validators import (
    FAMILY_NAME_RE,
    RESERVED_NAME_RE,
    TAG_NAME_RE,
    check_database_pattern,
    check_name,
    check_text,
)

_require_ops = policies.require_ops


@transaction.atomic
def family_create(*, actor, name: str, database_pattern: str = "wiki_{id}", description: str = ""):
    _require_ops(actor, "create families")
    check_name(name, field="name", pattern=FAMILY_NAME_RE)
    check_database_pattern(database_pattern)
    description = check_text(description, field="description", max_length=500, required=False)
    try:
        with transaction.atomic():
            family = Family.objects.create(
                name=name, database_pattern=database_pattern, description=description
            )
    except IntegrityError as exc:
        raise InvalidInput(f"family {name!r} already exists", field="name", rule="unique") from exc
    audit(
        actor=actor,
        action="family.create",
        target=family,
        after={"name": name, "database_pattern": database_pattern},
    )
    return family


@transaction.atomic
def tag_create(*, actor, name: str, priority: int = 0, description: str = ""):
    _require_ops(actor, "create tags")
    check_name(name, field="name", pattern=TAG_NAME_RE)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidInput("priority must be an integer", field="priority", rule="type:integer")
    description = check_text(description, field="description", max_length=500, required=False)
    try:
        with transaction.atomic():
            tag = Tag.objects.create(name=name, priority=priority, description=description)
    except IntegrityError as exc:
        raise InvalidInput(f"tag {name!r} already exists", field="name", rule="unique") from exc
    audit(actor=actor, action="tag.create", target=tag, after={"name": name, "priority": priority})
    return tag


@transaction.atomic
def reserved_name_add(*, actor, name: str, reason: str = ""):
    _require_ops(actor, "reserve names")
    check_name(name, field="name", pattern=RESERVED_NAME_RE)
    reserved, created = ReservedName.objects.get_or_create(name=name, defaults={"reason": reason})
    if created:
        audit(actor=actor, action="reserved_name.add", target=reserved, after={"reason": reason})
    return reserved


@transaction.atomic
def family_update(*, actor, name: str, description: object) -> Family:
    """Change a family's description (its name and database pattern never change: wikis
    derived their database names from them)."""
    _require_ops(actor, "change families")
    family = Family.objects.select_for_update().filter(name=name).first()
    if family is None:
        raise NotFound(f"family {name!r} not found", field="name")
    description = check_text(description, field="description", max_length=500, required=False)
    if description != family.description:
        before = {"description": family.description}
        family.description = description
        family.save(update_fields=["description"])
        audit(
            actor=actor,
            action="family.update",
            target=family,
            before=before,
            after={"description": description},
        )
    return family


@transaction.atomic
def tag_update(*, actor, name: str, priority: object, description: object) -> Tag:
    """Change a tag's priority or description (not its name: config blocks and dblists use
    it). A new priority reorders its wikis' tag layers, so their exports are marked."""
    _require_ops(actor, "change tags")
    tag = Tag.objects.select_for_update().filter(name=name).first()
    if tag is None:
        raise NotFound(f"tag {name!r} not found", field="name")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidInput("priority must be an integer", field="priority", rule="type:integer")
    description = check_text(description, field="description", max_length=500, required=False)
    before = {"priority": tag.priority, "description": tag.description}
    after = {"priority": priority, "description": description}
    if after == before:
        return tag
    tag.priority, tag.description = priority, description
    tag.save(update_fields=["priority", "description"])
    if after["priority"] != before["priority"]:
        publishing.mark_block(Block(ConfigLayer.TAG, tag.name))
    audit(actor=actor, action="tag.update", target=tag, before=before, after=after)
    return tag


@transaction.atomic
def reserved_name_remove(*, actor, name: str) -> None:
    _require_ops(actor, "free reserved names")
    reserved = ReservedName.objects.filter(name=name).first()
    if reserved is not None:
        # Audited first: a deleted row has no primary key left to name.
        audit(
            actor=actor,
            action="reserved_name.remove",
            target=reserved,
            before={"reason": reserved.reason},
        )
        reserved.delete()


MAX_OWNERS = 50


def _wiki_registry_view(wiki: Wiki) -> dict:
    return {
        "sitename": wiki.sitename,
        "owners": sorted(wiki.owners.values_list("username", flat=True)),
        "tags": sorted(wiki.tags.values_list("name", flat=True)),
    }


def _check_owners(owners: object) -> list:
    if not isinstance(owners, list | tuple) or not all(isinstance(o, str) for o in owners):
        raise InvalidInput("owners must be a list of user names", field="owners", rule="type:array")
    if not owners or len(owners) > MAX_OWNERS:
        raise InvalidInput(
            f"a wiki needs 1 to {MAX_OWNERS} owners", field="owners", rule=f"count:1..{MAX_OWNERS}"
        )
    users = list(get_user_model().objects.filter(username__in=owners, is_active=True))
    found = {user.get_username() for user in users}
    unknown = sorted(set(owners) - found)
    if unknown:
        raise InvalidInput(f"unknown or inactive users {unknown}", field="owners", rule="exists")
    not_admins = sorted(user.get_username() for user in users if not may_create_wikis(user))
    if not_admins:
        raise InvalidInput(
            f"users {not_admins} are neither wiki admins nor ops and cannot own wikis",
            field="owners",
            rule="role:wiki-admin",
        )
    return users


def _check_tags(tags: object) -> list[Tag]:
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise InvalidInput("tags must be a list of tag names", field="tags", rule="type:array")
    tag_objs = list(Tag.objects.filter(name__in=tags))
    unknown = sorted(set(tags) - {tag.name for tag in tag_objs})
    if unknown:
        raise InvalidInput(f"unknown tags {unknown}", field="tags", rule="exists")
    return tag_objs


@transaction.atomic
def wiki_update(
    *, actor, wiki_id: object, sitename: object = None, owners: object = None, tags: object = None
) -> Wiki:
    """Change a wiki's sitename, owners or tags; a field given as None stays as it is.

    Wiki admins change their own wikis, ops any; a purged wiki is a tombstone and stays as
    it was purged.
    """
    wiki = None
    if isinstance(wiki_id, str):
        wiki = Wiki.objects.for_user(actor).filter(pk=wiki_id).first()
    if wiki is None:
        raise NotFound(f"wiki {wiki_id!r} not found", field="wiki_id")
    policies.require_manager(actor, wiki)
    if wiki.state == WikiState.PURGED:
        raise WrongState(f"wiki {wiki.id} is purged", current_state=wiki.state)
    # Every value is checked before anything is written: a bad field changes nothing.
    new_sitename = None
    if sitename is not None:
        new_sitename = check_text(sitename, field="sitename", max_length=255)
    new_owners = _check_owners(owners) if owners is not None else None
    new_tags = _check_tags(tags) if tags is not None else None
    before = _wiki_registry_view(wiki)
    if new_sitename is not None and new_sitename != wiki.sitename:
        wiki.sitename = new_sitename
        wiki.save(update_fields=["sitename"])
    if new_owners is not None:
        wiki.owners.set(new_owners)
    if new_tags is not None:
        wiki.tags.set(new_tags)
    after = _wiki_registry_view(wiki)
    if (after["sitename"], after["tags"]) != (before["sitename"], before["tags"]):
        publishing.mark_wiki(wiki.pk)  # the sitename and tags are in what MediaWiki reads
    if after != before:
        audit(actor=actor, action="wiki.update", target=wiki, before=before, after=after)
    return wiki


@transaction.atomic
def auth_admin_record(
    *, actor, target, action: str, before: dict | None = None, after: dict | None = None
) -> None:
    """Record an edit of a user or group that Django's own admin saved (its forms hash the
    password and keep the permissions): the admin calls this in the same transaction, after
    Django's own permission checks allowed the edit."""
    audit(actor=actor, action=action, target=target, before=before, after=after)
