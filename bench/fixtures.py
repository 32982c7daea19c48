"""Bench data: users, the rows of a realistic wiki in its MariaDB database, and a registry
of many wikis inserted in bulk (a fixture, not the way wikis are made)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import MySQLdb

from provisioning.drivers.base import DATABASE_NAME_RE
from provisioning.drivers.mariadb import quote_identifier

WORDS = (
    "wiki farm page revision archive search database storage namespace template category "
    "the of and to in is that for on with as by at from this be are was an or it not which "
    "MediaWiki BlueSpice portal operator export manifest checksum lifecycle worker cluster"
).split()
ROW_BATCH = 200
ACTORS = 20
COMMENTS = 50
CATEGORIES = 10
LINKS_PER_PAGE = 5


def ops_user(username: str = "bench-ops"):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from farm.roles import OPS

    user, _ = get_user_model().objects.get_or_create(username=username)
    user.groups.add(Group.objects.get_or_create(name=OPS)[0])
    return get_user_model().objects.get(pk=user.pk)  # fresh: no cached roles


# --- a wiki's content, written straight into its MariaDB tables --------------------------


# Columns written per table (the rest take MediaWiki's defaults).
COLUMNS = {
    "content_models": ("model_id", "model_name"),
    "slot_roles": ("role_id", "role_name"),
    "user": (
        "user_id", "user_name", "user_real_name", "user_password", "user_newpassword",
        "user_email", "user_touched", "user_registration", "user_editcount",
    ),
    "actor": ("actor_id", "actor_user", "actor_name"),
    "comment": ("comment_id", "comment_hash", "comment_text"),
    "category": ("cat_id", "cat_title", "cat_pages"),
    "revision": (
        "rev_id", "rev_page", "rev_comment_id", "rev_actor", "rev_timestamp",
        "rev_minor_edit", "rev_deleted", "rev_len", "rev_parent_id", "rev_sha1",
    ),
    "text": ("old_id", "old_text", "old_flags"),
    "content": ("content_id", "content_size", "content_sha1", "content_model", "content_address"),
    "slots": ("slot_revision_id", "slot_role_id", "slot_content_id", "slot_origin"),
    "recentchanges": (
        "rc_id", "rc_timestamp", "rc_actor", "rc_namespace", "rc_title", "rc_comment_id",
        "rc_cur_id", "rc_this_oldid", "rc_last_oldid", "rc_new", "rc_new_len",
    ),
    "page": (
        "page_id", "page_namespace", "page_title", "page_is_new", "page_random",
        "page_touched", "page_latest", "page_len", "page_content_model",
    ),
    "pagelinks": ("pl_from", "pl_namespace", "pl_title", "pl_from_namespace"),
    "categorylinks": ("cl_from", "cl_to", "cl_sortkey", "cl_timestamp", "cl_collation"),
}  # fmt: skip


def _timestamp(minutes: int) -> bytes:
    """A MediaWiki timestamp (YYYYMMDDHHMMSS) `minutes` into 2025."""
    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return moment.strftime("%Y%m%d%H%M%S").encode()


def _wikitext(rng: random.Random, page: int, revision: int, size: int) -> bytes:
    words = rng.choices(WORDS, k=max(1, size // 7))
    links = " ".join(f"[[Page {rng.randint(1, 10_000)}]]" for _ in range(3))
    return (f"== Page {page}, revision {revision} ==\n" + " ".join(words) + "\n" + links).encode()


def batched(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    """itertools.batched of Python 3.12, for 3.11."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _insert(cursor, table: str, rows: Iterable[tuple]) -> int:
    """executemany in batches; return the number of rows written."""
    columns = COLUMNS[table]
    quoted_columns = ",".join(quote_identifier(c) for c in columns)
    placeholders = ",".join(["%s"] * len(columns))
    # Table and column names come from COLUMNS above and are quoted; values are bound.
    statement = f"INSERT INTO {quote_identifier(table)} ({quoted_columns}) VALUES ({placeholders})"  # noqa: S608
    written = 0
    for batch in batched(rows, ROW_BATCH):
        cursor.executemany(statement, batch)
        written += len(batch)
    return written


def fill_wiki_database(
    db_params: dict[str, Any],
    database_name: str,
    *,
    pages: int,
    revisions: int,
    text_bytes: int = 3000,
    seed: int = 1,
) -> dict[str, int]:
    """Users, actors, comments, pages, revisions with their text, content and slots, links,
    categories and recent changes, as MediaWiki 1.39 lays them out; return the row counts."""
    if not DATABASE_NAME_RE.fullmatch(database_name):
        raise ValueError(f"database name {database_name!r} is not a safe identifier")
    rng = random.Random(seed)  # noqa: S311 - repeatable data, not secrets
    connection = MySQLdb.connect(**db_params, db=database_name, charset="utf8mb4")
    try:
        cursor = connection.cursor()
        counts = _fill_people(cursor, pages=pages, revisions=revisions)
        counts |= _fill_history(
            cursor, rng, pages=pages, revisions=revisions, text_bytes=text_bytes
        )
        counts |= _fill_links(cursor, pages=pages)
        connection.commit()
    finally:
        connection.close()
    return counts


def _fill_people(cursor, *, pages: int, revisions: int) -> dict[str, int]:
    editors = range(1, ACTORS + 1)
    return {
        "content_models": _insert(cursor, "content_models", [(1, b"wikitext")]),
        "slot_roles": _insert(cursor, "slot_roles", [(1, b"main")]),
        "user": _insert(
            cursor,
            "user",
            (
                (
                    i,
                    f"Editor{i}".encode(),
                    b"",
                    b"",
                    b"",
                    "",
                    _timestamp(i),
                    _timestamp(i),
                    revisions // ACTORS,
                )
                for i in editors
            ),
        ),  # fmt: skip
        "actor": _insert(cursor, "actor", ((i, i, f"Editor{i}".encode()) for i in editors)),
        "comment": _insert(
            cursor,
            "comment",
            ((i, i * 7919 % 2**31, f"edit summary {i}".encode()) for i in range(1, COMMENTS + 1)),
        ),
        "category": _insert(
            cursor,
            "category",
            ((i, f"Category_{i}".encode(), pages // CATEGORIES) for i in range(1, CATEGORIES + 1)),
        ),
    }


def _fill_history(
    cursor, rng: random.Random, *, pages: int, revisions: int, text_bytes: int
) -> dict[str, int]:
    """Revisions round-robin over the pages, each with its text, content, slot and change,
    written in batches so that a large wiki is never held in memory at once."""
    latest: dict[int, tuple[int, int]] = {}
    counts = dict.fromkeys(("revision", "text", "content", "slots", "recentchanges"), 0)
    for first in range(1, revisions + 1, ROW_BATCH):
        rows: dict[str, list[tuple]] = {table: [] for table in counts}
        for rev_id in range(first, min(revisions, first + ROW_BATCH - 1) + 1):
            page_id = (rev_id - 1) % pages + 1
            size = rng.randint(text_bytes // 2, text_bytes * 3 // 2)
            text = _wikitext(rng, page_id, rev_id, size)
            sha1 = hashlib.sha1(text, usedforsecurity=False).hexdigest()[:31].encode()
            parent = latest.get(page_id, (0, 0))[0]
            actor, comment, when = (
                rng.randint(1, ACTORS),
                rng.randint(1, COMMENTS),
                _timestamp(rev_id),
            )
            rows["revision"].append(
                (rev_id, page_id, comment, actor, when, 0, 0, len(text), parent, sha1)
            )
            rows["text"].append((rev_id, text, b"utf-8"))
            rows["content"].append((rev_id, len(text), sha1, 1, f"tt:{rev_id}".encode()))
            rows["slots"].append((rev_id, 1, rev_id, rev_id))
            rows["recentchanges"].append(
                (rev_id, when, actor, 0, f"Page_{page_id}".encode(), comment, page_id, rev_id,
                 parent, int(parent == 0), len(text))
            )  # fmt: skip
            latest[page_id] = (rev_id, len(text))
        for table, table_rows in rows.items():
            counts[table] += _insert(cursor, table, table_rows)
    counts["page"] = _insert(
        cursor,
        "page",
        (
            (page_id, 0, f"Page_{page_id}".encode(), 0, rng.random(), _timestamp(page_id), rev,
             length, b"wikitext")
            for page_id, (rev, length) in sorted(latest.items())
        ),
    )  # fmt: skip
    return counts


def _fill_links(cursor, *, pages: int) -> dict[str, int]:
    page_ids = range(1, pages + 1)
    return {
        "pagelinks": _insert(
            cursor,
            "pagelinks",
            (
                (page, 0, f"Page_{(page + k * 37) % pages + 1}".encode(), 0)
                for page in page_ids
                for k in range(1, LINKS_PER_PAGE + 1)
            ),
        ),
        "categorylinks": _insert(
            cursor,
            "categorylinks",
            (
                (
                    page,
                    f"Category_{page % CATEGORIES + 1}".encode(),
                    f"PAGE {page}".encode(),
                    "2025-01-01 00:00:00",
                    b"uppercase",
                )
                for page in page_ids
            ),
        ),  # fmt: skip
    }


# --- a registry of many wikis ------------------------------------------------------------


REGISTRY_FAMILIES = ("default", "docs", "community", "clients", "intranet")
REGISTRY_TAGS = 20
REGISTRY_OWNERS = 100
# The wiki-layer setting a fixed family's wikis never override (bench/scale.py changes it
# on the family and checks that every one of the family's files holds the new value).
FAMILY_SETTING = "wgRightsText"


def registry_wiki_id(run_token: str, number: int, wikis: int) -> str:
    return f"r{run_token}{number:0{max(5, len(str(wikis - 1)))}d}"


def bulk_registry(
    *,
    run_token: str,
    wikis: int,
    families: tuple[str, ...] = REGISTRY_FAMILIES,
    fixed_family: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Insert `wikis` Wiki rows (90% active, 8% archived, 2% purged) with families, tags,
    owners and config blocks at every layer. They have no resources: only the registry is
    measured with them, and cleanup never touches their (non-existent) databases.

    `fixed_family=(name, count)` puts exactly `count` of them in family `name` (and no other
    wiki): active or archived, never purged, and none overriding FAMILY_SETTING at the wiki
    layer, so that a change of the family's value reaches every one of their files.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django.utils import timezone

    from farm.models import ConfigLayer, ConfigValue, Family, SettingDefinition, Tag, Wiki
    from farm.roles import WIKI_ADMIN

    rng = random.Random(7)  # noqa: S311 - repeatable data, not secrets
    now = timezone.now()
    fixed_name, fixed_count = fixed_family or ("", 0)
    if fixed_count > wikis or fixed_name in families:
        raise ValueError(f"fixed family {fixed_family} does not fit {wikis} wikis of {families}")
    with transaction.atomic():
        family_objs = [Family.objects.get_or_create(name=name)[0] for name in families]
        fixed = Family.objects.get_or_create(name=fixed_name)[0] if fixed_count else None
        tags = [
            Tag.objects.get_or_create(name=f"bench-tag-{i}", defaults={"priority": i})[0]
            for i in range(REGISTRY_TAGS)
        ]
        admins = Group.objects.get_or_create(name=WIKI_ADMIN)[0]
        owners = get_user_model().objects.bulk_create(
            [get_user_model()(username=f"bench-owner-{i}") for i in range(REGISTRY_OWNERS)]
        )
        admins.user_set.add(*owners)
        in_fixed = set(rng.sample(range(wikis), fixed_count))
        rows = []
        for number in range(wikis):
            wiki_id = registry_wiki_id(run_token, number, wikis)
            roll = rng.random()
            family = rng.choice(family_objs)
            if number in in_fixed:
                family, roll = fixed, roll * 0.98  # served: active or archived
            state = "active" if roll < 0.90 else "archived" if roll < 0.98 else "purged"
            rows.append(
                Wiki(
                    id=wiki_id,
                    family=family,
                    sitename=f"Registry wiki {number}",
                    language=rng.choice(["en", "de", "fr"]),
                    state=state,
                    read_only=state != "active",
                    database_name=f"wiki_{wiki_id}",
                    storage_prefix=f"wikis/{wiki_id}/",
                    activated_at=now - timedelta(days=rng.randint(1, 900)),
                )
            )
        Wiki.objects.bulk_create(rows, batch_size=1000)
        tag_links = [
            Wiki.tags.through(wiki_id=row.id, tag_id=tag.pk)
            for row in rows
            for tag in rng.sample(tags, rng.randint(0, 3))
        ]
        Wiki.tags.through.objects.bulk_create(tag_links, batch_size=2000)
        owner_links = [
            Wiki.owners.through(wiki_id=row.id, user_id=rng.choice(owners).pk) for row in rows
        ]
        Wiki.owners.through.objects.bulk_create(owner_links, batch_size=2000)
        all_families = family_objs + ([fixed] if fixed else [])
        config_rows = _config_blocks(
            rng, all_families, fixed, tags, rows, SettingDefinition, ConfigValue, ConfigLayer
        )
        ConfigValue.objects.bulk_create(config_rows, batch_size=1000)
    return {
        "wikis": wikis,
        "families": len(all_families),
        "fixed_family": {"name": fixed_name, "wikis": fixed_count} if fixed else None,
        "states": {
            state: sum(1 for row in rows if row.state == state)
            for state in ("active", "archived", "purged")
        },
        "tags": len(tags),
        "owners": len(owners),
        "tag_links": len(tag_links),
        "config_values": len(config_rows),
    }


def _config_blocks(rng, families, fixed, tags, rows, SettingDefinition, ConfigValue, ConfigLayer):  # noqa: N803
    """Values at the family and tag layers and on one wiki in ten, as a real farm has."""
    definitions = {d.name: d for d in SettingDefinition.objects.all()}
    values = []

    def add(layer: str, target: str, name: str, value: Any) -> None:
        if name in definitions:
            values.append(
                ConfigValue(layer=layer, target=target, setting=definitions[name], value=value)
            )

    for family in families:
        add(ConfigLayer.FAMILY, family.name, "wgDefaultSkin", "vector-2022")
        add(ConfigLayer.FAMILY, family.name, "wgEnableUploads", True)
    if fixed is not None:
        add(ConfigLayer.FAMILY, fixed.name, FAMILY_SETTING, "CC BY-SA 4.0")
    for tag in tags:
        add(
            ConfigLayer.TAG,
            tag.name,
            "wgGroupPermissions",
            {"user": {"edit": tag.priority % 2 == 0}},
        )
    for row in rows[::10]:
        if fixed is None or row.family_id != fixed.pk:
            add(ConfigLayer.WIKI, row.id, FAMILY_SETTING, f"CC BY-SA, {row.id}")
        add(ConfigLayer.WIKI, row.id, "wgGroupPermissions", {"*": {"read": rng.random() < 0.5}})
    return values
