"""Registry writes that are not lifecycle operations: families, tags, reserved names."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from farm.audit import audit
from farm.errors import InvalidInput, NotAllowed
from farm.models import Family, ReservedName, Tag
from farm.roles import is_ops
from farm.validators import (
    FAMILY_NAME_RE,
    RESERVED_NAME_RE,
    TAG_NAME_RE,
    check_database_pattern,
    check_name,
    check_text,
)


def _require_ops(actor, what: str) -> None:
    if not is_ops(actor):
        raise NotAllowed(f"only ops may {what}")


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
