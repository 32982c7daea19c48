"""What MediaWiki reads at request time: farm.json and dblists, written atomically.

The configuration layers and the SiteConfiguration export come with the settings catalog;
this module already gives every served wiki's database, state and read-only flag.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from farm.models import Wiki, WikiState

# Wikis MediaWiki serves: archived ones read-only; provisioning, purging and purged ones not.
SERVED_STATES = (
    WikiState.ACTIVE,
    WikiState.ARCHIVING,
    WikiState.ARCHIVED,
    WikiState.UNARCHIVING,
)


def export_dir() -> Path:
    return Path(settings.DATA_DIR) / "exports"


def farm_export() -> dict[str, Any]:
    database_type = settings.FARM_DRIVERS["database"]["class"].rsplit(".", 2)[-2]
    wikis = {}
    rows = (
        Wiki.objects.filter(state__in=SERVED_STATES)
        .select_related("family")
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
    for wiki_id, family, state, read_only, database_name, cluster, sitename, language in rows:
        wikis[wiki_id] = {
            "family": family,
            "state": state,
            "read_only": read_only or state != WikiState.ACTIVE,
            "database": {"type": database_type, "name": database_name, "cluster": cluster},
            "settings": {"wgSitename": sitename, "wgLanguageCode": language},
        }
    return {"format": 1, "wikis": wikis}


def dblists(export: dict[str, Any]) -> dict[str, list[str]]:
    wikis = export["wikis"]
    lists: dict[str, list[str]] = {
        "all": sorted(wikis),
        "archived": sorted(w for w, v in wikis.items() if v["state"] == WikiState.ARCHIVED),
        "closed": sorted(w for w, v in wikis.items() if v["read_only"]),
    }
    for wiki_id, entry in sorted(wikis.items()):
        lists.setdefault(f"family-{entry['family']}", []).append(wiki_id)
    return lists


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_exports() -> dict[str, Any]:
    """Write farm.json and the dblists; readers never see a half-written file."""
    export = farm_export()
    target = export_dir()
    _write_atomically(target / "farm.json", json.dumps(export, indent=1, sort_keys=True).encode())
    for name, wikis in dblists(export).items():
        _write_atomically(
            target / "dblists" / f"{name}.dblist", "".join(f"{w}\n" for w in wikis).encode()
        )
    return {"wikis": len(export["wikis"]), "path": str(target / "farm.json")}
