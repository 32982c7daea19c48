"""Restore one wiki from a backup or an archive: in place, or as a new wiki id (a clone).

In place is for ops only and needs the wiki id typed as confirmation; the wiki's current
state is backed up first (the first steps of the operation), MediaWiki answers 503 while
the database is replaced, and row counts and checksums are checked against the manifest
before the wiki is served again. A clone is a new wiki: a new database and storage
namespace holding a copy of the source's files, its search documents reindexed under the
new id, the source's own config block copied, and the source recorded in `cloned_from`.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from farm import policies
from farm.audit import audit
from farm.config import config_set
from farm.errors import InvalidInput, NotFound
from farm.models import ConfigLayer, ConfigValue, Wiki, WikiState
from farm.roles import is_ops
from farm.transactions import retry_on_lock_conflict
from farm.validators import check_text, echo
from provisioning import placement, runs
from provisioning.drivers.base import ARCHIVE_ID_RE
from provisioning.models import BackupKind, Operation, OperationKind, WikiBackup
from provisioning.services import (
    check_new_database_name,
    check_new_wiki_id,
    check_quota,
    start_operation,
)

RESTORABLE_STATES = (WikiState.ACTIVE, WikiState.CLOSED)


def restore_sources(wiki: Wiki) -> list[dict[str, Any]]:
    """What a wiki can be restored from, newest first: its backups and its archive."""
    sources = [
        {
            "kind": "backup",
            "id": backup.backup_id,
            "backup_kind": backup.kind,
            "created_at": backup.created_at.isoformat(),
            "bytes": backup.bytes,
            "manifest_sha256": backup.manifest_sha256,
        }
        for backup in WikiBackup.objects.filter(wiki=wiki)
    ]
    if wiki.current_archive_id and wiki.archive_manifest:
        sources.append(
            {
                "kind": "archive",
                "id": wiki.current_archive_id,
                "manifest_sha256": wiki.archive_manifest.get("manifest_sha256"),
            }
        )
    return sources


def _source(wiki: Wiki, source_id: object) -> dict[str, str]:
    """The backup or archive of `wiki` named `source_id`, with the manifest hash the
    registry recorded for it (what the restore checks the files against)."""
    if not isinstance(source_id, str) or not ARCHIVE_ID_RE.fullmatch(source_id):
        raise InvalidInput(
            f"from must be a backup or archive id ({ARCHIVE_ID_RE.pattern}), not {echo(source_id)}",
            field="from",
            rule=ARCHIVE_ID_RE.pattern,
        )
    for source in restore_sources(wiki):
        if source["id"] == source_id:
            return {
                "kind": source["kind"],
                "id": source_id,
                "manifest_sha256": source["manifest_sha256"],
            }
    raise NotFound(
        f"wiki {wiki.id} has no backup or archive {source_id!r}; see its backups", field="from"
    )


@transaction.atomic
def wiki_restore(*, actor, wiki_id: object, source_id: object, confirm: object) -> Operation:
    """Restore a wiki in place from one of its own backups or its archive."""
    wiki = policies.visible_wiki(actor, wiki_id)
    policies.require_ops(actor, "restore wikis in place")
    if confirm != wiki.id:
        raise InvalidInput(
            f"type the wiki id {wiki.id!r} to confirm: restoring in place replaces its "
            f"database (got {echo(confirm)})",
            field="confirm",
            rule="equals_wiki_id",
        )
    if wiki.state not in RESTORABLE_STATES:
        raise InvalidInput(
            f"wiki {wiki.id} is {wiki.state}; restore in place needs an active or closed "
            "wiki (an archived one is unarchived)",
            field="wiki_id",
            rule="state",
        )
    source = _source(wiki, source_id)
    return start_operation(
        wiki=wiki,
        kind=OperationKind.RESTORE,
        actor=actor,
        params={
            "source": source,
            "backup_id": runs.new_run_id(),
            "backup_kind": BackupKind.BEFORE_RESTORE,
        },
    )


@retry_on_lock_conflict
def wiki_clone(
    *, actor, wiki_id: object, source_id: object, new_id: object, sitename: object = None
) -> Operation:
    """Restore a wiki's backup or archive as a new wiki (BlueSpice's CloneInstance)."""
    source_wiki = policies.visible_wiki(actor, wiki_id)
    policies.require_manager(actor, source_wiki, what=f"wiki {source_wiki.id} (to clone it)")
    new_id = check_new_wiki_id(new_id)
    source = _source(source_wiki, source_id)
    if not is_ops(actor):
        check_quota(actor)
    name = source_wiki.sitename if sitename in (None, "") else sitename
    name = check_text(name, field="sitename", max_length=255)
    database_name = check_new_database_name(source_wiki.family, new_id)
    with transaction.atomic():
        try:
            with transaction.atomic():
                clone = Wiki.objects.create(
                    id=new_id,
                    family=source_wiki.family,
                    sitename=name,
                    language=source_wiki.language,
                    database_name=database_name,
                    storage_prefix=f"wikis/{new_id}/",
                    cluster=placement.choose(),
                    created_by=actor,
                    size_class=source_wiki.size_class,
                    cloned_from={"wiki": source_wiki.id, source["kind"]: source["id"]},
                )
        except IntegrityError as exc:
            raise InvalidInput(
                f"wiki id {new_id!r} is taken", field="new_id", rule="unique"
            ) from exc
        clone.tags.set(source_wiki.tags.all())
        clone.owners.set(source_wiki.owners.all())
        audit(
            actor=actor,
            action="wiki.clone",
            target=clone,
            after={"source": clone.cloned_from, "database_name": database_name},
        )
        _copy_config_block(actor, source_wiki, clone)
        placement.take(clone.cluster)
        return start_operation(
            wiki=clone,
            kind=OperationKind.CLONE,
            actor=actor,
            params={"source": source, "source_wiki": source_wiki.id},
        )


def _copy_config_block(actor, source: Wiki, clone: Wiki) -> int:
    """The source's own settings (not the inherited ones) become the clone's, through the
    config writes, so each has its history and audit event."""
    rows = ConfigValue.objects.filter(layer=ConfigLayer.WIKI, target=source.id).select_related(
        "setting"
    )
    copied = 0
    for row in rows:
        config_set(
            actor=actor,
            layer=ConfigLayer.WIKI,
            target=clone.id,
            setting=row.setting.name,
            value=row.value,
        )
        copied += 1
    return copied
