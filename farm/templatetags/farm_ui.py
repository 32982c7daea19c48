"""Template helpers of the web UI: roles for the navigation, values shown as JSON."""

from __future__ import annotations

import json

from django import template

from farm import roles
from provisioning.models import UnarchiveRequest, UnarchiveRequestState

register = template.Library()


@register.filter
def is_ops(user) -> bool:
    return roles.is_ops(user)


@register.filter
def sees_all_wikis(user) -> bool:
    return roles.sees_all_wikis(user)


@register.filter
def may_create_wikis(user) -> bool:
    return roles.may_create_wikis(user)


@register.filter
def role_names(user) -> str:
    held = [role for role in roles.ROLES if roles.has_role(user, role)]
    if user.is_superuser:
        held.append("superuser")
    return ", ".join(held) or "no role"


@register.simple_tag
def pending_unarchive_count() -> int:
    return UnarchiveRequest.objects.filter(state=UnarchiveRequestState.PENDING).count()


@register.filter
def as_json(value) -> str:
    """A setting's value as JSON, the way the MediaWiki include receives it."""
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


@register.filter
def humanize_key(key: str) -> str:
    """`archive_objects_deleted` as "archive objects deleted"."""
    return str(key).replace("_", " ")


@register.filter
def shown(value) -> str:
    """A recorded value as a person reads it: yes or no, not Python's True or False."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return compact_json(value)
    return str(value)


@register.filter
def compact_json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@register.simple_tag(takes_context=True)
def page_url(context, number: int) -> str:
    """The current list's URL with its filters, on page `number`."""
    query = context["request"].GET.copy()
    query["page"] = number
    return "?" + query.urlencode()
