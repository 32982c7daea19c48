"""What MediaWiki reads at request time (DESIGN section 6), rendered and written atomically.

Per wiki, the only file MediaWiki reads on a request:
- `wikis/<id>.json`: the wiki's state, database, URL, host, read-only flag and reason,
  storage location and effective settings (and which of them merge with MediaWiki's own
  defaults); a purging or purged wiki's file says only that (the include answers 410).

Farm-wide, rewritten at most once per publish window (farm/publishing.py):
- `hosts.json`: host -> wiki id, for hosts that name one wiki;
- `dblists/*.dblist`: all, archived, closed (read-only), per family and per tag;
- `siteconfig.json`: the layers themselves, shaped for MediaWiki's SiteConfiguration
  (`$wgConf->settings`): `settings -> {default, family-<name>, tag-<name>, <wiki id>}`;
- `farm.json`: every served wiki in one file, for tools that want everything at once.

Every render takes a constant number of queries, whatever the number of wikis. A file is
replaced only when its bytes change (temp file + rename), so its ETag, derived from the
file's inode, modification time and size, is recorded by the write itself and a conditional
GET costs one stat.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
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
from farm.models import (
    ConfigLayer,
    MergeStrategy,
    SettingDefinition,
    SizeClass,
    Tag,
    Wiki,
    WikiState,
)
from provisioning.drivers import locations
from provisioning.drivers.base import WikiResources

EXPORT_FORMAT = 2
WIKI_FILE_FORMAT = 3
# Wikis MediaWiki serves: archived ones read-only; provisioning, purging and purged ones not.
SERVED_STATES = (
    WikiState.ACTIVE,
    WikiState.CLOSED,
    WikiState.ARCHIVING,
    WikiState.ARCHIVED,
    WikiState.UNARCHIVING,
)
# Gone for good, or about to be: the include answers 410 Gone for these ids.
TOMBSTONE_STATES = (WikiState.PURGING, WikiState.PURGED)
DEFAULT_WIKI_URL = "http://localhost/{id}/"
FARM_FILE = "farm.json"
SITECONFIG_FILE = "siteconfig.json"
HOSTS_FILE = "hosts.json"
DBLIST_DIR = "dblists"
WIKI_DIR = "wikis"
# Wiki files rendered and written per registry read (and per hold of the export lock).
PUBLISH_BATCH = 250


def export_dir() -> Path:
    return Path(settings.DATA_DIR) / "exports"


def wiki_file_path(wiki_id: str) -> Path:
    # Only ever called with ids read from the registry, which validated them.
    return export_dir() / WIKI_DIR / f"{wiki_id}.json"


def wiki_url(wiki_id: str) -> str:
    """The wiki's URL from FARM_WIKI_URL, a pattern with {id} in its host or path."""
    return getattr(settings, "FARM_WIKI_URL", DEFAULT_WIKI_URL).replace("{id}", wiki_id)


# --- reading the registry (a constant number of queries) ----------------------------------

WIKI_FIELDS = (
    "id",
    "family__name",
    "state",
    "read_only",
    "closed_reason",
    "offline",
    "database_name",
    "storage_prefix",
    "cluster",
    "sitename",
    "language",
)


def _wiki_rows(
    wiki_ids: Iterable[str] | None = None, states: Iterable[str] | None = SERVED_STATES
) -> list[dict]:
    wikis = Wiki.objects.all()
    if states is not None:
        wikis = wikis.filter(state__in=list(states))
    if wiki_ids is not None:
        wikis = wikis.filter(pk__in=list(wiki_ids))
    return list(wikis.order_by("id").values(*WIKI_FIELDS))


def _tags_of(wiki_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Tags in precedence order (the tag that wins first) of the given wikis, or of every
    served wiki."""
    tagged: dict[str, list[tuple[str, int]]] = {}
    through = Wiki.tags.through.objects
    if wiki_ids is None:
        rows = through.filter(wiki__state__in=SERVED_STATES)
    else:
        rows = through.filter(wiki_id__in=list(wiki_ids))
    # The few tags apart, not joined: MariaDB plans the join from the tag side and reads
    # every tagged wiki of the farm to find a batch's.
    tags = {
        pk: (name, priority)
        for pk, name, priority in Tag.objects.values_list("pk", "name", "priority")
    }
    for wiki_id, tag_id in rows.values_list("wiki_id", "tag_id"):
        tagged.setdefault(wiki_id, []).append(tags[tag_id])
    return {wiki_id: tag_precedence(tags) for wiki_id, tags in tagged.items()}


def _merge_settings() -> list[str]:
    return sorted(
        SettingDefinition.objects.filter(merge_strategy=MergeStrategy.MERGE).values_list(
            "name", flat=True
        )
    )


def _read_only_reason(row: dict[str, Any], settings_: dict[str, Any]) -> str | None:
    """Why MediaWiki must refuse edits, or None when the wiki is writable."""
    if settings_.get("wgReadOnly"):
        return str(settings_["wgReadOnly"])
    if row["state"] == WikiState.CLOSED:
        return row["closed_reason"] or "This wiki is closed."
    if row["state"] != WikiState.ACTIVE or row["read_only"]:
        return f"This wiki is read-only while it is {row['state']}."
    return None


def _served_entries(rows: list[dict], *, with_storage: bool) -> dict[str, dict[str, Any]]:
    """The export entry of each served wiki in `rows`."""
    # A batch names its wikis; the whole farm is cheaper read without a list of ids.
    ids = [row["id"] for row in rows]
    tags = _tags_of(ids if len(ids) <= PUBLISH_BATCH else None)
    effective = effective_settings_for_wikis(
        [(r["id"], r["family__name"], r["sitename"], r["language"]) for r in rows], tags
    )
    entries = {}
    for row in rows:
        wiki_id = row["id"]
        resources = WikiResources(
            wiki_id=wiki_id,
            database_name=row["database_name"],
            storage_prefix=row["storage_prefix"],
            cluster=row["cluster"],
        )
        found = locations(resources, storage=with_storage)
        reason = _read_only_reason(row, effective[wiki_id])
        url = wiki_url(wiki_id)
        entry = {
            "family": row["family__name"],
            "tags": tags.get(wiki_id, []),
            "state": row["state"],
            "read_only": reason is not None,
            "read_only_reason": reason,
            "offline": row["offline"],
            "url": url,
            "host": (urlsplit(url).hostname or "").lower(),
            "database": found["database"],
            "settings": effective[wiki_id],
        }
        if with_storage:
            entry["storage"] = found["storage"]
        entries[wiki_id] = entry
    return entries


# --- wikis/<id>.json ---------------------------------------------------------------------


def wiki_files(
    wiki_ids: list[str], *, as_state: str | None = None
) -> dict[str, dict[str, Any] | None]:
    """The content of each wiki's own file; None for a wiki that has none (provisioning,
    or no longer registered). `as_state` renders the wikis as if already in that state:
    `activate` publishes the file before the wiki turns active."""
    rows = _wiki_rows(wiki_ids, states=None) if as_state else []
    if as_state:
        for row in rows:
            row["state"] = as_state
    else:
        rows = _wiki_rows(wiki_ids, states=[*SERVED_STATES, *TOMBSTONE_STATES])
    files: dict[str, dict[str, Any] | None] = dict.fromkeys(wiki_ids)
    served = [row for row in rows if row["state"] in SERVED_STATES]
    merge_settings = _merge_settings() if served else []
    for wiki_id, entry in _served_entries(served, with_storage=True).items():
        files[wiki_id] = {
            "format": WIKI_FILE_FORMAT,
            "id": wiki_id,
            **entry,
            "merge_settings": merge_settings,
        }
    for row in rows:
        if row["state"] in TOMBSTONE_STATES:
            files[row["id"]] = {"format": WIKI_FILE_FORMAT, "id": row["id"], "state": row["state"]}
    return files


# --- farm.json ---------------------------------------------------------------------------


def farm_export() -> dict[str, Any]:
    wikis = _served_entries(_wiki_rows(), with_storage=False)
    tombstones = Wiki.objects.filter(state__in=TOMBSTONE_STATES).order_by("id")
    return {
        "format": EXPORT_FORMAT,
        "wikis": wikis,
        "tombstones": list(tombstones.values_list("id", flat=True)),
        "merge_settings": _merge_settings(),
    }


def hosts_export(export: dict[str, Any]) -> dict[str, Any]:
    """Host -> wiki id for the hosts that name exactly one served wiki (host routing); with
    path routing every wiki shares the host and the map is empty."""
    owners: dict[str, list[str]] = {}
    for wiki_id, entry in export["wikis"].items():
        host = (urlsplit(entry["url"]).hostname or "").lower()
        owners.setdefault(host, []).append(wiki_id)
    hosts = {host: ids[0] for host, ids in sorted(owners.items()) if len(ids) == 1 and host}
    return {"format": 1, "hosts": hosts}


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
    rows = _wiki_rows()
    tags = _tags_of()
    blocks = load_blocks(row["id"] for row in rows)
    for row in rows:
        wiki_block = Block(ConfigLayer.WIKI, row["id"])
        blocks[wiki_block] = {
            **blocks.get(wiki_block, {}),
            **registry_values(row["sitename"], row["language"]),
        }
    site_settings: dict[str, dict[str, Any]] = {}
    farm_default = blocks.get(Block(ConfigLayer.DEFAULT), {})
    for name, definition in catalog.definitions.items():
        default = definition.default
        if name in farm_default:
            merges = catalog.merges(name) and default is not None
            default = merge_values(default, farm_default[name]) if merges else farm_default[name]
        if default is not None:
            site_settings.setdefault(name, {})["default"] = default
    served = {row["id"] for row in rows}
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
            row["id"]: {
                "suffix": family_key(row["family__name"]),
                "tags": [tag_key(tag) for tag in tags.get(row["id"], [])],
            }
            for row in rows
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
    # Size classes from the inventory: what a maintenance script batches by (small first).
    # Not in the wiki entries: a class change rewrites these lists, not the wiki's file.
    for size_class in SizeClass.values:
        lists[f"size-{size_class}"] = []
    classes = Wiki.objects.filter(state__in=SERVED_STATES).values_list("id", "size_class")
    for wiki_id, size_class in classes.iterator(chunk_size=5000):
        if wiki_id in wikis:
            lists[f"size-{size_class}"].append(wiki_id)
    return {name: sorted(ids) for name, ids in sorted(lists.items())}


def dblist_bytes(wiki_ids: list[str]) -> bytes:
    return "".join(f"{wiki_id}\n" for wiki_id in wiki_ids).encode()


def json_bytes(data: dict[str, Any], *, compact: bool = False) -> bytes:
    """Canonical JSON: the same export always gives the same bytes, hence the same ETag.
    A wiki's own file is indented for the people who read it; the farm-wide files, tens of
    MB at 100,000 wikis, are compact (indenting costs several times the encoding)."""
    if compact:
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False)
    return text.encode() + b"\n"


# --- ETags -------------------------------------------------------------------------------


def file_etag(stat: os.stat_result) -> str:
    """The ETag of an export file as it is on disk. A file is only ever replaced whole, by a
    rename (a new inode), and only when its bytes change, so inode, modification time and
    size name its bytes: the write records the ETag and a conditional GET is one stat."""
    return f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an If-None-Match header names `etag` (weakly, as RFC 9110 says for GET)."""
    if not if_none_match:
        return False
    candidates = [candidate.strip() for candidate in if_none_match.split(",")]
    return any(candidate == "*" or candidate.removeprefix("W/") == etag for candidate in candidates)


# --- writing files -----------------------------------------------------------------------


@contextmanager
def _exclusive(target: Path, name: str) -> Iterator[None]:
    """One writer at a time, reading the registry inside the lock: the last file written
    always comes from the newest registry, never from a writer that read it earlier."""
    target.mkdir(parents=True, exist_ok=True)
    with open(target / name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Wiki files and farm-wide files have a lock each: a create's own file never waits for a
# farm-wide rewrite, whose cost grows with the farm.
WIKI_FILES_LOCK = ".wikis.lock"
FARM_FILES_LOCK = ".lock"


def write_wiki_files(wiki_ids: list[str], *, as_state: str | None = None) -> int:
    """Write the wikis' own files (at most PUBLISH_BATCH ids); returns how many changed.

    The changed files are written as temporary files, made durable with one sync for the
    whole batch (not an fsync each), then renamed into place: a reader sees the old file
    or the new one, and a crash leaves no half-written file under a wiki's name. A wiki
    without a file (provisioning, or gone) is left alone: only `remove_wiki_file` removes
    one.
    """
    with _exclusive(export_dir(), WIKI_FILES_LOCK):
        changed = []
        for wiki_id, content in wiki_files(wiki_ids, as_state=as_state).items():
            if content is None:
                continue
            path, data = wiki_file_path(wiki_id), json_bytes(content)
            if _current_bytes(path) != data:
                changed.append((path, data))
        _replace_all(changed)
        return len(changed)


def _current_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _replace_all(files: list[tuple[Path, bytes]]) -> None:
    temporaries: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            temporaries.append((tmp, path))
            os.fchmod(fd, 0o644)  # MediaWiki runs as another user; nothing here is secret
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        if temporaries:
            os.sync()
        for tmp, path in temporaries:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temporaries:
            Path(tmp).unlink(missing_ok=True)
        raise


def remove_wiki_file(wiki_id: str) -> None:
    """Forget a wiki that never was (an abandoned create): MediaWiki answers 404 again."""
    with _exclusive(export_dir(), WIKI_FILES_LOCK):
        wiki_file_path(wiki_id).unlink(missing_ok=True)


def render_exports(export: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Every farm-wide file's relative path and bytes (from `export`, farm.json's data)."""
    export = farm_export() if export is None else export
    files = {
        FARM_FILE: json_bytes(export, compact=True),
        SITECONFIG_FILE: json_bytes(siteconfig_export(), compact=True),
        HOSTS_FILE: json_bytes(hosts_export(export), compact=True),
    }
    for name, wiki_ids in dblists(export).items():
        files[f"{DBLIST_DIR}/{name}.dblist"] = dblist_bytes(wiki_ids)
    return files


def write_farm_files() -> dict[str, Any]:
    """Write farm.json, siteconfig.json, hosts.json and the dblists; readers never see a
    half-written file, and dblists of families or tags without served wikis are removed."""
    target = export_dir()
    with _exclusive(target, FARM_FILES_LOCK):
        export = farm_export()
        files = render_exports(export)
        # Replaced only when their bytes change, so an unchanged file keeps its ETag.
        changed = [
            relative
            for relative, data in files.items()
            if _current_bytes(target / relative) != data
        ]
        _replace_all([(target / relative, files[relative]) for relative in changed])
        for stale in (target / DBLIST_DIR).glob("*.dblist"):
            if f"{DBLIST_DIR}/{stale.name}" not in files:
                stale.unlink(missing_ok=True)
    farm_file = target / FARM_FILE
    return {
        "wikis": len(export["wikis"]),
        "changed": changed,
        "path": str(farm_file),
        "etag": file_etag(farm_file.stat()),
    }


def wiki_id_batches() -> Iterator[list[str]]:
    """The ids of every wiki that has a file (served or tombstoned), a batch at a time."""
    wiki_ids = list(
        Wiki.objects.filter(state__in=[*SERVED_STATES, *TOMBSTONE_STATES])
        .order_by("id")
        .values_list("id", flat=True)
    )
    for first in range(0, len(wiki_ids), PUBLISH_BATCH):
        yield wiki_ids[first : first + PUBLISH_BATCH]


def write_exports() -> dict[str, Any]:
    """Rewrite every export file from the registry (`manage.py export_farm`)."""
    wikis = written = 0
    for batch in wiki_id_batches():
        written += write_wiki_files(batch)
        wikis += len(batch)
    return {**write_farm_files(), "wiki_files": wikis, "wiki_files_written": written}
