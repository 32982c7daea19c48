"""Bench data: users, the rows of a realistic wiki in its MariaDB database, and a registry
of many wikis inserted in bulk (a fixture, not the way wikis are made)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import timedelta
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


def _timestamp(minutes: int) -> bytes:
    return f"2025{(minutes // 43200) % 12 + 1:02d}{(minutes // 1440) % 28 + 1:02d}{(minutes // 60) % 24:02d}{minutes % 60:02d}00".encode()


def _wikitext(rng: random.Random, page: int, revision: int, size: int) -> bytes:
    words = rng.choices(WORDS, k=max(1, size // 7))
    links = " ".join(f"[[Page {rng.randint(1, 10_000)}]]" for _ in range(3))
    return (f"== Page {page}, revision {revision} ==\n" + " ".join(words) + "\n" + links).encode()


def _insert(cursor, table: str, columns: list[str], rows: Iterator[tuple]) -> int:
    quoted_columns = ",".join(quote_identifier(c) for c in columns)
    placeholders = ",".join(["%s"] * len(columns))
    statement = f"INSERT INTO {quote_identifier(table)} ({quoted_columns}) VALUES ({placeholders})"  # noqa: S608
    batch: list[tuple] = []
    written = 0
    for row in rows:
        batch.append(row)
        if len(batch) >= ROW_BATCH:
            cursor.executemany(statement, batch)
            written += len(batch)
            batch = []
    if batch:
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
    rng = random.Random(seed)
    connection = MySQLdb.connect(**db_params, db=database_name, charset="utf8mb4")
    try:
        cursor = connection.cursor()
        counts = _fill(cursor, rng, pages=pages, revisions=revisions, text_bytes=text_bytes)
        connection.commit()
    finally:
        connection.close()
    return counts


def _fill(cursor, rng: random.Random, *, pages: int, revisions: int, text_bytes: int) -> dict:
    counts = {
        "content_models": _insert(cursor, "content_models", ["model_id", "model_name"], iter([(1, b"wikitext")])),
        "slot_roles": _insert(cursor, "slot_roles", ["role_id", "role_name"], iter([(1, b"main")])),
        "user": _insert(cursor, "user", ["user_id", "user_name", "user_real_name", "user_password", "user_newpassword", "user_email", "user_touched", "user_registration", "user_editcount"], ((i, f"Editor{i}".encode(), b"", b"", b"", "", _timestamp(i), _timestamp(i), revisions // ACTORS) for i in range(1, ACTORS + 1))),
        "actor": _insert(cursor, "actor", ["actor_id", "actor_user", "actor_name"], ((i, i, f"Editor{i}".encode()) for i in range(1, ACTORS + 1))),
        "comment": _insert(cursor, "comment", ["comment_id", "comment_hash", "comment_text"], ((i, i * 7919 % 2**31, f"edit summary {i}".encode()) for i in range(1, COMMENTS + 1))),
        "category": _insert(cursor, "category", ["cat_id", "cat_title", "cat_pages"], ((i, f"Category_{i}".encode(), pages // CATEGORIES) for i in range(1, CATEGORIES + 1))),
    }  # fmt: skip
    latest: dict[int, tuple[int, int]] = {}
    revision_rows, text_rows, content_rows, slot_rows, change_rows = [], [], [], [], []
    for rev_id in range(1, revisions + 1):
        page_id = (rev_id - 1) % pages + 1
        text = _wikitext(rng, page_id, rev_id, rng.randint(text_bytes // 2, text_bytes * 3 // 2))
        sha1 = hashlib.sha1(text, usedforsecurity=False).hexdigest()[:31].encode()
        parent = latest.get(page_id, (0, 0))[0]
        actor, comment = rng.randint(1, ACTORS), rng.randint(1, COMMENTS)
        when = _timestamp(rev_id)
        revision_rows.append((rev_id, page_id, comment, actor, when, 0, 0, len(text), parent, sha1))
        text_rows.append((rev_id, text, b"utf-8"))
        content_rows.append((rev_id, len(text), sha1, 1, f"tt:{rev_id}".encode()))
        slot_rows.append((rev_id, 1, rev_id, rev_id))
        change_rows.append((rev_id, when, actor, 0, f"Page_{page_id}".encode(), comment, page_id, rev_id, parent, int(parent == 0), len(text)))  # fmt: skip
        latest[page_id] = (rev_id, len(text))
    counts["revision"] = _insert(cursor, "revision", ["rev_id", "rev_page", "rev_comment_id", "rev_actor", "rev_timestamp", "rev_minor_edit", "rev_deleted", "rev_len", "rev_parent_id", "rev_sha1"], iter(revision_rows))  # fmt: skip
    counts["text"] = _insert(cursor, "text", ["old_id", "old_text", "old_flags"], iter(text_rows))
    counts["content"] = _insert(cursor, "content", ["content_id", "content_size", "content_sha1", "content_model", "content_address"], iter(content_rows))  # fmt: skip
    counts["slots"] = _insert(cursor, "slots", ["slot_revision_id", "slot_role_id", "slot_content_id", "slot_origin"], iter(slot_rows))  # fmt: skip
    counts["recentchanges"] = _insert(cursor, "recentchanges", ["rc_id", "rc_timestamp", "rc_actor", "rc_namespace", "rc_title", "rc_comment_id", "rc_cur_id", "rc_this_oldid", "rc_last_oldid", "rc_new", "rc_new_len"], iter(change_rows))  # fmt: skip
    counts["page"] = _insert(cursor, "page", ["page_id", "page_namespace", "page_title", "page_is_new", "page_random", "page_touched", "page_latest", "page_len", "page_content_model"], ((p, 0, f"Page_{p}".encode(), 0, rng.random(), _timestamp(p), rev, length, b"wikitext") for p, (rev, length) in sorted(latest.items())))  # fmt: skip
    counts["pagelinks"] = _insert(cursor, "pagelinks", ["pl_from", "pl_namespace", "pl_title", "pl_from_namespace"], ((p, 0, f"Page_{(p + k * 37) % pages + 1}".encode(), 0) for p in range(1, pages + 1) for k in range(1, LINKS_PER_PAGE + 1)))  # fmt: skip
    counts["categorylinks"] = _insert(cursor, "categorylinks", ["cl_from", "cl_to", "cl_sortkey", "cl_timestamp", "cl_collation"], ((p, f"Category_{p % CATEGORIES + 1}".encode(), f"PAGE {p}".encode(), "2025-01-01 00:00:00", b"uppercase") for p in range(1, pages + 1)))  # fmt: skip
    return counts


# --- a registry of many wikis ------------------------------------------------------------


REGISTRY_FAMILIES = ("default", "docs", "community", "clients", "intranet")
REGISTRY_TAGS = 20
REGISTRY_OWNERS = 100


def bulk_registry(*, run_token: str, wikis: int) -> dict[str, Any]:
    """Insert `wikis` Wiki rows (90% active, 8% archived, 2% purged) with families, tags,
    owners and config blocks at every layer. They have no resources: only the registry is
    measured with them, and cleanup never touches their (non-existent) databases."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django.utils import timezone

    from farm.models import ConfigLayer, ConfigValue, Family, SettingDefinition, Tag, Wiki
    from farm.roles import WIKI_ADMIN

    rng = random.Random(7)
    now = timezone.now()
    with transaction.atomic():
        families = [Family.objects.get_or_create(name=name)[0] for name in REGISTRY_FAMILIES]
        tags = [
            Tag.objects.get_or_create(name=f"bench-tag-{i}", defaults={"priority": i})[0]
            for i in range(REGISTRY_TAGS)
        ]
        admins = Group.objects.get_or_create(name=WIKI_ADMIN)[0]
        owners = get_user_model().objects.bulk_create(
            [get_user_model()(username=f"bench-owner-{i}") for i in range(REGISTRY_OWNERS)]
        )
        admins.user_set.add(*owners)
        rows = []
        for number in range(wikis):
            wiki_id = f"r{run_token}{number:05d}"
            roll = rng.random()
            state = "active" if roll < 0.90 else "archived" if roll < 0.98 else "purged"
            rows.append(
                Wiki(
                    id=wiki_id,
                    family=rng.choice(families),
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
        config_rows = _config_blocks(
            rng, families, tags, rows, SettingDefinition, ConfigValue, ConfigLayer
        )
        ConfigValue.objects.bulk_create(config_rows, batch_size=1000)
    return {
        "wikis": wikis,
        "families": len(families),
        "tags": len(tags),
        "owners": len(owners),
        "tag_links": len(tag_links),
        "config_values": len(config_rows),
    }


def _config_blocks(rng, families, tags, rows, SettingDefinition, ConfigValue, ConfigLayer):  # noqa: N803
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
    for tag in tags:
        add(
            ConfigLayer.TAG,
            tag.name,
            "wgGroupPermissions",
            {"user": {"edit": tag.priority % 2 == 0}},
        )
    for row in rows[::10]:
        add(ConfigLayer.WIKI, row.id, "wgRightsText", f"CC BY-SA, {row.id}")
        add(ConfigLayer.WIKI, row.id, "wgGroupPermissions", {"*": {"read": rng.random() < 0.5}})
    return values
