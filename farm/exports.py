"""What MediaWiki reads at request time (DESIGN section 6), written atomically:

- `farm.json`: every served wiki with its state, database, URL, read-only flag and
  effective settings, the ids of purged wikis (`tombstones`, so the include can answer 410)
  and which settings merge with MediaWiki's own defaults;
- `siteconfig.json`: the layers themselves, shaped for MediaWiki's SiteConfiguration
  (`$wgConf->settings`): `settings -> {default, family-<name>, tag-<name>, <wiki id>}`;
- `dblists/*.dblist`: all, archived, closed (read-only), per family and per tag.

Every export is built with a constant number of queries, whatever the number of wikis, and
each has an ETag (a hash of its bytes) so pollers get 304 while nothing changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from farm.config import (
    Block,
    Catalog,
    effective_settings_for_wikis,
    load_blocks,
    merge_values,
    registry_values,
    tag_precedence,
)
from farm.models import ConfigLayer, MergeStrategy, SettingDefinition, Wiki, WikiState

EXPORT_FORMAT = 2
# Wikis MediaWiki serves: archived ones read-only; provisioning, purging and purged ones not.
SERVED_STATES = (
    WikiState.ACTIVE,
    WikiState.ARCHIVING,
    WikiState.ARCHIVED,
    WikiState.UNARCHIVING,
)
# Gone for good, or about to be: the include answers 410 Gone for these ids.
TOMBSTONE_STATES = (WikiState.PURGING, WikiState.PURGED)
DEFAULT_WIKI_URL = "http://localhost/{id}/"
FARM_FILE = "farm.json"
SITECONFIG_FILE = "siteconfig.json"
DBLIST_DIR = "dblists"


def export_dir() -> Path:
    return Path(settings.DATA_DIR) / "exports"


def wiki_url(wiki_id: str) -> str:
    """The wiki's URL from FARM_WIKI_URL, a pattern with {id} in its host or path."""
    return getattr(settings, "FARM_WIKI_URL", DEFAULT_WIKI_URL).replace("{id}", wiki_id)


def _database_description() -> tuple[str, dict[str, str]]:
    """The database driver's engine name and the host:port of each cluster it knows."""
    database = settings.FARM_DRIVERS["database"]
    engine = database["class"].rsplit(".", 2)[-2]
    options = database.get("options", {})
    urls = options.get("clusters") or ({"default": options["url"]} if "url" in options else {})
    hosts = {}
    for cluster, url in urls.items():
        parts = urlsplit(url)
        # Only where the database is: the credentials in the URL never leave the portal.
        if parts.hostname:
            hosts[cluster] = f"{parts.hostname}:{parts.port or 3306}"
    return engine, hosts


# --- reading the registry (a constant number of queries) ----------------------------------


def _served_wikis() -> list[tuple]:
    return list(
        Wiki.objects.filter(state__in=SERVED_STATES)
        .order_by("id")
        .values_list(
            "id",
            "family__name",
            "state",
            "read_only",
            "database_name",
            "cluster",
            "sitename",
            "language",
        )
    )


def _tags_of_served_wikis() -> dict[str, list[str]]:
    """Each served wiki's tags in precedence order (the tag that wins first)."""
    tagged: dict[str, list[tuple[str, int]]] = {}
    rows = Wiki.tags.through.objects.filter(wiki__state__in=SERVED_STATES).values_list(
        "wiki_id", "tag__name", "tag__priority"
    )
    for wiki_id, name, priority in rows:
        tagged.setdefault(wiki_id, []).append((name, priority))
    return {wiki_id: tag_precedence(tags) for wiki_id, tags in tagged.items()}


def _merge_settings() -> list[str]:
    return sorted(
        SettingDefinition.objects.filter(merge_strategy=MergeStrategy.MERGE).values_list(
            "name", flat=True
        )
    )


# --- farm.json ---------------------------------------------------------------------------


def farm_export() -> dict[str, Any]:
    engine, hosts = _database_description()
    rows = _served_wikis()
    tags = _tags_of_served_wikis()
    effective = effective_settings_for_wikis(
        [(wiki_id, family, sitename, language) for wiki_id, family, *_, sitename, language in rows],
        tags,
    )
    wikis = {}
    for wiki_id, family, state, read_only, database_name, cluster, _, _ in rows:
        database = {"type": engine, "name": database_name, "cluster": cluster}
        if cluster in hosts:
            database["host"] = hosts[cluster]
        wikis[wiki_id] = {
            "family": family,
            "tags": tags.get(wiki_id, []),
            "state": state,
            "read_only": read_only or state != WikiState.ACTIVE,
            "url": wiki_url(wiki_id),
            "database": database,
            "settings": effective[wiki_id],
        }
    tombstones = Wiki.objects.filter(state__in=TOMBSTONE_STATES).order_by("id")
    return {
        "format": EXPORT_FORMAT,
        "wikis": wikis,
        "tombstones": list(tombstones.values_list("id", flat=True)),
        "merge_settings": _merge_settings(),
    }


# --- siteconfig.json ---------------------------------------------------------------------


def family_key(family: str) -> str:
    # Prefixed: families, tags, wiki ids and "default" share SiteConfiguration's keys, and
    # the seeded family is even called "default".
    return f"family-{family}"


def tag_key(tag: str) -> str:
    return f"tag-{tag}"


def _site_key(block: Block) -> str:
    if block.layer == ConfigLayer.FAMILY:
        return family_key(block.target)
    if block.layer == ConfigLayer.TAG:
        return tag_key(block.target)
    return block.target


def siteconfig_export() -> dict[str, Any]:
    """The layers as `$wgConf->settings`, plus each wiki's suffix and tags for `$wgConf`.

    Merge settings use SiteConfiguration's `+key` form below the default. (SiteConfiguration
    lets a less specific `true` replace a more specific `false` when merging maps; farm.json
    has the portal's own resolution, where the more specific layer always wins.)
    """
    catalog = Catalog.load()
    rows = _served_wikis()
    tags = _tags_of_served_wikis()
    blocks = load_blocks(wiki_id for wiki_id, *_ in rows)
    for wiki_id, *_, sitename, language in rows:
        wiki_block = Block(ConfigLayer.WIKI, wiki_id)
        blocks[wiki_block] = {**blocks.get(wiki_block, {}), **registry_values(sitename, language)}
    site_settings: dict[str, dict[str, Any]] = {}
    farm_default = blocks.get(Block(ConfigLayer.DEFAULT), {})
    for name, definition in catalog.definitions.items():
        default = definition.default
        if name in farm_default:
            merges = catalog.merges(name) and default is not None
            default = merge_values(default, farm_default[name]) if merges else farm_default[name]
        if default is not None:
            site_settings.setdefault(name, {})["default"] = default
    served = {wiki_id for wiki_id, *_ in rows}
    for block, values in sorted(blocks.items(), key=lambda item: (item[0].layer, item[0].target)):
        if block.layer == ConfigLayer.DEFAULT:
            continue
        if block.layer == ConfigLayer.WIKI and block.target not in served:
            continue
        for name, value in values.items():
            key = ("+" if catalog.merges(name) else "") + _site_key(block)
            site_settings.setdefault(name, {})[key] = value
    return {
        "format": 1,
        "settings": dict(sorted(site_settings.items())),
        "wikis": {
            wiki_id: {
                "suffix": family_key(family),
                "tags": [tag_key(tag) for tag in tags.get(wiki_id, [])],
            }
            for wiki_id, family, *_ in rows
        },
    }


# --- dblists -----------------------------------------------------------------------------


def dblists(export: dict[str, Any]) -> dict[str, list[str]]:
    wikis = export["wikis"]
    lists: dict[str, list[str]] = {
        "all": sorted(wikis),
        "archived": sorted(w for w, v in wikis.items() if v["state"] == WikiState.ARCHIVED),
        "closed": sorted(w for w, v in wikis.items() if v["read_only"]),
    }
    for wiki_id, entry in sorted(wikis.items()):
        lists.setdefault(f"family-{entry['family']}", []).append(wiki_id)
        for tag in entry.get("tags", []):
            lists.setdefault(f"tag-{tag}", []).append(wiki_id)
    return {name: sorted(ids) for name, ids in sorted(lists.items())}


def dblist_bytes(wiki_ids: list[str]) -> bytes:
    return "".join(f"{wiki_id}\n" for wiki_id in wiki_ids).encode()


def json_bytes(data: dict[str, Any]) -> bytes:
    """Canonical JSON: the same export always gives the same bytes, hence the same ETag."""
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"


# --- ETags -------------------------------------------------------------------------------


def content_etag(body: bytes) -> str:
    """A strong ETag for `body`: its sha256, quoted as HTTP wants."""
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an If-None-Match header names `etag` (weakly, as RFC 9110 says for GET)."""
    if not if_none_match:
        return False
    candidates = [candidate.strip() for candidate in if_none_match.split(",")]
    return any(candidate == "*" or candidate.removeprefix("W/") == etag for candidate in candidates)


# --- writing files -----------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # MediaWiki runs as another user than the portal; nothing in here is secret.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    """One writer at a time, reading the registry inside the lock: the last file written
    always comes from the newest registry, never from a writer that read it earlier."""
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def render_exports(export: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Every export file's relative path and bytes (from `export`, farm.json's data)."""
    export = farm_export() if export is None else export
    files = {FARM_FILE: json_bytes(export), SITECONFIG_FILE: json_bytes(siteconfig_export())}
    for name, wiki_ids in dblists(export).items():
        files[f"{DBLIST_DIR}/{name}.dblist"] = dblist_bytes(wiki_ids)
    return files


def write_exports() -> dict[str, Any]:
    """Write farm.json, siteconfig.json and the dblists; readers never see a half-written
    file, and dblists of families or tags that no longer have served wikis are removed."""
    target = export_dir()
    with _exclusive(target):
        export = farm_export()
        files = render_exports(export)
        for relative, data in files.items():
            _write_atomically(target / relative, data)
        for stale in (target / DBLIST_DIR).glob("*.dblist"):
            if f"{DBLIST_DIR}/{stale.name}" not in files:
                stale.unlink(missing_ok=True)
    return {
        "wikis": len(export["wikis"]),
        "path": str(target / FARM_FILE),
        "etag": content_etag(files[FARM_FILE]),
    }
