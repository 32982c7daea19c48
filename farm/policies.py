"""Who may do what to a wiki: the one place for these rules.

Roles come from farm.roles; what a user may *see* is `Wiki.objects.for_user(user)`, so a
wiki another admin owns is "not found", never "forbidden". These functions decide what a
user may *change* among what they see.
"""

from __future__ import annotations

from django.conf import settings

from farm.errors import InvalidInput, NotAllowed, NotFound
from farm.models import Wiki
from farm.roles import WIKI_ADMIN, has_role, is_ops


def visible_wiki(user, wiki_id: object) -> Wiki:
    """The wiki with this id if the user may see it; NotFound otherwise."""
    if not isinstance(wiki_id, str):
        raise InvalidInput("wiki id must be a string", field="wiki_id", rule="type:string")
    wiki = Wiki.objects.for_user(user).select_related("family").filter(pk=wiki_id).first()
    if wiki is None:
        raise NotFound(f"wiki {wiki_id!r} not found", field="wiki_id")
    return wiki


def may_manage_wiki(user, wiki: Wiki) -> bool:
    """Ops act on every wiki; a wiki admin on the wikis they own; auditors only read."""
    if is_ops(user):
        return True
    return has_role(user, WIKI_ADMIN) and wiki.owners.filter(pk=user.pk).exists()


def require_manager(user, wiki: Wiki, *, what: str = "") -> None:
    if not may_manage_wiki(user, wiki):
        raise NotAllowed(f"you may not change {what or f'wiki {wiki.pk}'}")


def may_close_wiki(user, wiki: Wiki) -> bool:
    """Ops close and reopen wikis; the wiki's own admins too where the farm allows it."""
    return is_ops(user) or (settings.FARM_OWNERS_MAY_CLOSE and may_manage_wiki(user, wiki))


def require_closer(user, wiki: Wiki) -> None:
    if may_close_wiki(user, wiki):
        return
    require_manager(user, wiki)  # a stranger learns nothing more than "not allowed"
    raise NotAllowed(
        "only ops may close or reopen wikis on this farm (FARM_OWNERS_MAY_CLOSE is off)"
    )


def require_ops(user, what: str) -> None:
    """Farm-wide work (runs, restores, families, tags) is for ops only."""
    if not is_ops(user):
        raise NotAllowed(f"only ops may {what}")
