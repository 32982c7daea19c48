"""The steps of each operation kind, in order (the state machine of provisioning/README.md).

A step is a function of a `StepContext` returning a JSON-serialisable result that the engine
records before the next step starts. Every step is idempotent: the engine may run it again
after a crash, a lost message or a retry, and the outcome is the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from farm import exports, publishing
from farm.models import ConfigLayer, ConfigValue, Wiki, WikiState
from provisioning import archives, placement, schema_changes, sinks
from provisioning.drivers import database_driver, search_driver, storage_driver
from provisioning.drivers.base import PermanentError, WikiResources, iter_ndjson
from provisioning.models import (
    BackupKind,
    Operation,
    OperationKind,
    WikiBackup,
    WikiMigration,
)


class ResourceConflict(PermanentError):
    """A resource with the wiki's derived name exists but this operation did not make it."""


@dataclass
class StepContext:
    operation: Operation
    wiki: Wiki
    step: dict[str, Any]
    checkpoint: Callable[..., None]

    @property
    def resources(self) -> WikiResources:
        return wiki_resources(self.wiki)

    @property
    def archive_id(self) -> str:
        return self.operation.params["archive_id"]

    @property
    def sink(self) -> sinks.Sink:
        """Where this operation writes a dump: the archive, or a backup folder."""
        if self.operation.kind == OperationKind.ARCHIVE:
            return sinks.archive_sink(self.wiki.id, self.archive_id)
        return sinks.backup_sink(self.operation.params["backup_id"], self.wiki.id)

    @property
    def source_sink(self) -> sinks.Sink:
        """What this operation restores from: the wiki's archive, or the given source of
        this wiki (restore in place) or of the wiki it is cloned from."""
        if self.operation.kind == OperationKind.UNARCHIVE:
            return sinks.archive_sink(self.wiki.id, self.archive_id)
        params = self.operation.params
        return sinks.source_sink(params.get("source_wiki", self.wiki.id), params["source"])

    @property
    def touched_before(self) -> bool:
        """True when an earlier run of this step already started changing the resource."""
        return bool(self.step.get("touched"))


def wiki_resources(wiki: Wiki) -> WikiResources:
    return WikiResources(
        wiki_id=wiki.id,
        database_name=wiki.database_name,
        storage_prefix=wiki.storage_prefix,
        cluster=wiki.cluster,
        metadata={
            "wiki_id": wiki.id,
            "family": wiki.family.name,
            "sitename": wiki.sitename,
            "language": wiki.language,
        },
    )


def _set_wiki(wiki: Wiki, **fields: Any) -> dict[str, Any]:
    """Change lifecycle fields, marking the wiki's export dirty in the same UPDATE; the
    coalesced publish then refreshes the farm-wide lists."""
    Wiki.objects.filter(pk=wiki.pk).update(**fields, **publishing.dirty_fields())
    transaction.on_commit(publishing.request_publish)
    for name, value in fields.items():
        setattr(wiki, name, value)
    return {name: str(value) if value is not None else None for name, value in fields.items()}


# --- create ------------------------------------------------------------------------------


def create_database(ctx: StepContext) -> dict[str, Any]:
    driver = database_driver()
    if not ctx.touched_before and driver.inspect(ctx.resources).exists:
        # Never adopt (and later drop) a database this wiki did not create.
        raise ResourceConflict(
            f"database {ctx.wiki.database_name} already exists and was not created by this "
            "operation; reconcile or rename before retrying"
        )
    ctx.checkpoint(touched=True)
    return driver.create(ctx.resources, resume=True)


def run_post_create_hook(ctx: StepContext) -> dict[str, Any]:
    return database_driver().post_create(ctx.resources)


def create_storage(ctx: StepContext) -> dict[str, Any]:
    ctx.checkpoint(touched=True)
    return storage_driver().create(ctx.resources)


def ensure_search_indices(ctx: StepContext) -> dict[str, Any]:
    return search_driver().create(ctx.resources)


def activate(ctx: StepContext) -> dict[str, Any]:
    # The wiki's own file first: MediaWiki serves the wiki from the moment it is active.
    published = publishing.publish_wiki_now(ctx.wiki.id, as_state=WikiState.ACTIVE)
    result = _set_wiki(
        ctx.wiki, state=WikiState.ACTIVE, read_only=False, activated_at=timezone.now()
    )
    return {**result, "export": published["path"]}


# --- close and reopen (the service changed the state; MediaWiki learns it here) ----------


def publish_closed(ctx: StepContext) -> dict[str, Any]:
    return publishing.publish_wiki_now(ctx.wiki.id)


def publish_reopened(ctx: StepContext) -> dict[str, Any]:
    return publishing.publish_wiki_now(ctx.wiki.id)


# --- archive -----------------------------------------------------------------------------


def publish_read_only(ctx: StepContext) -> dict[str, Any]:
    _set_wiki(ctx.wiki, read_only=True)
    return publishing.publish_wiki_now(ctx.wiki.id)


def dump_database(ctx: StepContext) -> dict[str, Any]:
    database = database_driver()
    result = archives.write_compressed(
        ctx.sink, archives.DATABASE_FILE, lambda stream: database.archive(ctx.resources, stream)
    )
    return {**result, "engine": database.engine, "name": ctx.wiki.database_name}


def export_search_documents(ctx: StepContext) -> dict[str, Any]:
    search = search_driver()
    return archives.write_compressed(
        ctx.sink, archives.SEARCH_FILE, lambda stream: search.archive(ctx.resources, stream)
    )


def inventory_storage(ctx: StepContext) -> dict[str, Any]:
    return storage_driver().archive(ctx.resources)


def write_archive_manifest(ctx: StepContext) -> dict[str, Any]:
    op = ctx.operation
    manifest = {
        "format": 1,
        "wiki_id": ctx.wiki.id,
        **(
            {"archive_id": ctx.archive_id}
            if op.kind == OperationKind.ARCHIVE
            else {"backup_id": op.params["backup_id"]}
        ),
        "family": ctx.wiki.family.name,
        "created_at": op.created_at.isoformat(),
        "operation_id": str(op.id),
        "database": op.result_of("dump_database"),
        "search": op.result_of("export_search_documents"),
        "storage": op.result_of("inventory_storage"),
    }
    sink = ctx.sink
    manifest_sha256 = archives.write_manifest(sink, manifest)
    # Read back what was written before anything live is dropped.
    if archives.read_manifest(sink) != manifest:
        raise PermanentError(f"{sink.folder}: manifest.json reads back differently")
    verified = archives.verify_files(sink, manifest)
    return {"manifest_sha256": manifest_sha256, "verified": verified}


def publish_offline(ctx: StepContext) -> dict[str, Any]:
    """From here MediaWiki answers 503 (being archived): the database is about to go."""
    _set_wiki(ctx.wiki, offline=True)
    return {**publishing.publish_wiki_now(ctx.wiki.id), "offline_at": time.time()}


def _drain_requests(since: float) -> None:
    """Let the requests MediaWiki began before the wiki went offline finish before its
    database goes: one that is still rendering would otherwise fail on a missing table."""
    wait = settings.FARM_OFFLINE_DRAIN_SECONDS - (time.time() - since)
    if wait > 0:
        time.sleep(wait)


def drop_database(ctx: StepContext) -> dict[str, Any]:
    _drain_requests(ctx.operation.result_of("publish_offline")["offline_at"])
    return database_driver().purge(ctx.resources)


def delete_search_documents(ctx: StepContext) -> dict[str, Any]:
    return search_driver().purge(ctx.resources)


def mark_archived(ctx: StepContext) -> dict[str, Any]:
    now = timezone.now()
    manifest = {
        "archive_id": ctx.archive_id,
        "manifest_sha256": ctx.operation.result_of("write_archive_manifest")["manifest_sha256"],
        "database": ctx.operation.result_of("dump_database"),
        "search": ctx.operation.result_of("export_search_documents"),
        "storage": ctx.operation.result_of("inventory_storage"),
    }
    result = _set_wiki(
        ctx.wiki,
        state=WikiState.ARCHIVED,
        archived_at=now,
        purge_after=now + timedelta(days=settings.FARM_ARCHIVE_RETENTION_DAYS),
        current_archive_id=ctx.archive_id,
        archive_manifest=manifest,
        offline=False,  # the state says it from now on
        closed_reason="",
    )
    publishing.publish_wiki_now(ctx.wiki.id)
    return {key: result[key] for key in ("state", "archived_at", "purge_after")}


# --- unarchive ---------------------------------------------------------------------------


def verify_archive(ctx: StepContext) -> dict[str, Any]:
    """Check the source's manifest against the registry's record of it, then every file
    against the manifest: before anything is restored from it."""
    sink = ctx.source_sink
    manifest = archives.read_manifest(sink)
    recorded = _recorded_manifest_sha256(ctx)
    actual = archives.manifest_sha256(manifest)
    if recorded and actual != recorded:
        raise PermanentError(
            f"{sink.folder}: manifest.json was changed since it was written "
            f"(sha256 {actual}, registry has {recorded})"
        )
    return {"verified": archives.verify_files(sink, manifest)}


def _recorded_manifest_sha256(ctx: StepContext) -> str | None:
    if ctx.operation.kind == OperationKind.UNARCHIVE:
        return (ctx.wiki.archive_manifest or {}).get("manifest_sha256")
    return ctx.operation.params.get("source", {}).get("manifest_sha256")


def _manifest(ctx: StepContext) -> dict[str, Any]:
    return archives.read_manifest(ctx.source_sink)


def restore_database(ctx: StepContext) -> dict[str, Any]:
    manifest = _manifest(ctx)
    database = database_driver()
    if manifest["database"].get("engine") != database.engine:
        raise PermanentError(
            f"{ctx.source_sink.folder} holds a {manifest['database'].get('engine')} dump; "
            f"the database driver is {database.engine}"
        )
    if ctx.operation.kind == OperationKind.CLONE:
        _refuse_foreign_database(ctx)
    result = archives.read_compressed(
        ctx.source_sink,
        archives.DATABASE_FILE,
        lambda stream: database.restore(ctx.resources, stream),
    )
    expected = manifest["database"]["table_rows"]
    if result["table_rows"] != expected:
        raise PermanentError(
            f"restored row counts {result['table_rows']} differ from the manifest's {expected}"
        )
    return result


def reindex_search_documents(ctx: StepContext) -> dict[str, Any]:
    manifest = _manifest(ctx)
    search = search_driver()
    search.create(ctx.resources)
    search.purge(ctx.resources)  # a half-finished earlier run leaves no strays
    source_wiki = ctx.operation.params.get("source_wiki")
    if source_wiki:  # a clone: the documents are the source's, given the new wiki's id

        def consume(stream):
            documents = _documents_owned_by(ctx.wiki.id, source_wiki, iter_ndjson(stream))
            return search.index(ctx.resources, documents)
    else:

        def consume(stream):
            return search.restore(ctx.resources, stream)

    result = archives.read_compressed(ctx.source_sink, archives.SEARCH_FILE, consume)
    expected = manifest["search"]["documents"]
    if result["documents"] != expected:
        raise PermanentError(
            f"reindexed {result['documents']} documents, the manifest lists {expected}"
        )
    return result


def _documents_owned_by(
    wiki_id: str, source_wiki: str, documents: Iterator[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    for document in documents:
        source = document.get("source")
        if isinstance(source, dict) and source.get("wiki_id", source_wiki) == source_wiki:
            document = {**document, "source": {**source, "wiki_id": wiki_id}}
        yield document  # one of another wiki stays as it is: the driver refuses it


def reopen_storage(ctx: StepContext) -> dict[str, Any]:
    return storage_driver().restore(ctx.resources)


def publish_read_write(ctx: StepContext) -> dict[str, Any]:
    _set_wiki(
        ctx.wiki,
        state=WikiState.ACTIVE,
        read_only=False,
        offline=False,
        archived_at=None,
        purge_after=None,
    )
    return publishing.publish_wiki_now(ctx.wiki.id)


# --- backup (a run's item; also the first steps of a restore or a migration) -------------


def record_backup(ctx: StepContext) -> dict[str, Any]:
    """Register the verified backup, then keep only the newest FARM_BACKUP_KEEP of the wiki."""
    op = ctx.operation
    backup_id = op.params["backup_id"]
    total = sum(
        op.result_of(step).get("bytes", 0) for step in ("dump_database", "export_search_documents")
    )
    WikiBackup.objects.get_or_create(
        wiki=ctx.wiki,
        backup_id=backup_id,
        defaults={
            "kind": op.params.get("backup_kind", BackupKind.RUN),
            "run": op.run,
            "manifest_sha256": op.result_of("write_archive_manifest")["manifest_sha256"],
            "bytes": total,
        },
    )
    pruned = []
    for old in WikiBackup.objects.filter(wiki=ctx.wiki)[settings.FARM_BACKUP_KEEP :]:
        sinks.backup_sink(old.backup_id, ctx.wiki.id).delete()
        old.delete()
        pruned.append(old.backup_id)
    return {"backup_id": backup_id, "bytes": total, "pruned": pruned}


# --- restore in place, and clone (restore as a new wiki id) ------------------------------


def _refuse_foreign_database(ctx: StepContext) -> None:
    """A clone's database is new: one that exists already was not made by this operation."""
    if not ctx.touched_before and database_driver().inspect(ctx.resources).exists:
        raise ResourceConflict(
            f"database {ctx.wiki.database_name} already exists and was not created by this "
            "operation; reconcile or rename before retrying"
        )
    ctx.checkpoint(touched=True)


def take_offline(ctx: StepContext) -> dict[str, Any]:
    """Restore in place replaces the database: MediaWiki answers 503 meanwhile."""
    return publish_offline(ctx)


def wait_for_requests(ctx: StepContext) -> dict[str, Any]:
    _drain_requests(ctx.operation.result_of("take_offline")["offline_at"])
    return {"drained": True}


def put_back_online(ctx: StepContext) -> dict[str, Any]:
    _set_wiki(ctx.wiki, offline=False)
    return publishing.publish_wiki_now(ctx.wiki.id)


def copy_storage_files(ctx: StepContext) -> dict[str, Any]:
    """The clone's namespace holds a copy of the source's files (they stay in place in
    archives and backups, which only inventory them)."""
    source = Wiki.objects.select_related("family").get(pk=ctx.operation.params["source_wiki"])
    storage = storage_driver()
    ctx.checkpoint(touched=True)
    storage.create(ctx.resources)
    return storage.copy_files(wiki_resources(source), ctx.resources)


# --- migrate -----------------------------------------------------------------------------


def _already_migrated(ctx: StepContext) -> bool:
    return WikiMigration.objects.filter(
        wiki=ctx.wiki, name=ctx.operation.params["migration"]
    ).exists()


def apply_migration(ctx: StepContext) -> dict[str, Any]:
    if _already_migrated(ctx):
        return {"skipped": f"{ctx.operation.params['migration']} is applied already"}
    params = ctx.operation.params
    if params.get("sql_file"):
        return schema_changes.apply_sql_file(
            ctx.resources, params["sql_file"], params["sql_sha256"]
        )
    return schema_changes.run_command(ctx.resources, params["command"])


def record_migration(ctx: StepContext) -> dict[str, Any]:
    _, created = WikiMigration.objects.get_or_create(
        wiki=ctx.wiki,
        name=ctx.operation.params["migration"],
        defaults={"run": ctx.operation.run},
    )
    return {"recorded": created}


# --- purge -------------------------------------------------------------------------------


def purge_database(ctx: StepContext) -> dict[str, Any]:
    # MediaWiki answers 410 before the database goes, never a database error; a wiki purged
    # while it was served gets its requests in flight drained first.
    publishing.publish_wiki_now(ctx.wiki.id)
    if ctx.operation.params.get("from_state") in (WikiState.ACTIVE, WikiState.CLOSED):
        _drain_requests(time.time())
    return database_driver().purge(ctx.resources)


def purge_storage(ctx: StepContext) -> dict[str, Any]:
    return storage_driver().purge(ctx.resources)


def purge_backups(ctx: StepContext) -> dict[str, Any]:
    """The wiki's archives and backups in the archive storage: every folder whose name is
    derived from this wiki id and a recorded backup or archive id."""
    deleted = sinks.delete_wiki_archives(ctx.wiki.id)
    for backup in WikiBackup.objects.filter(wiki=ctx.wiki):
        deleted += sinks.backup_sink(backup.backup_id, ctx.wiki.id).delete()
        backup.delete()
    return {"archive_files_deleted": deleted}


def purge_search_documents(ctx: StepContext) -> dict[str, Any]:
    return search_driver().purge(ctx.resources)


def remove_config(ctx: StepContext) -> dict[str, Any]:
    """Delete the wiki's own config block; its last values go into the purge receipt (the
    step's result, recorded before the rows go, survives a crash and a retry)."""
    block = ConfigValue.objects.filter(layer=ConfigLayer.WIKI, target=ctx.wiki.id)
    values = dict(block.values_list("setting__name", "value"))
    if "values" not in ctx.step.get("checkpoint", {}):
        ctx.checkpoint(checkpoint={"values": values})
    kept = ctx.step["checkpoint"]["values"]
    deleted, _ = block.delete()
    publishing.publish_wiki_now(ctx.wiki.id)
    return {"values": kept, "rows_deleted": deleted}


def verify_purged(ctx: StepContext) -> dict[str, Any]:
    remaining = {
        "database": database_driver().inspect(ctx.resources).as_dict(),
        "storage": storage_driver().inspect(ctx.resources).as_dict(),
        "search": search_driver().inspect(ctx.resources).as_dict(),
    }
    leftovers = []
    if remaining["database"]["exists"]:
        leftovers.append(f"database {ctx.wiki.database_name} still exists")
    objects = sum(remaining["storage"]["counts"].values())
    if objects:
        leftovers.append(f"{objects} storage objects remain")
    documents = sum(remaining["search"]["counts"].values())
    if documents:
        leftovers.append(f"{documents} search documents remain")
    config_rows = ConfigValue.objects.filter(layer=ConfigLayer.WIKI, target=ctx.wiki.id).count()
    if config_rows:
        leftovers.append(f"{config_rows} configuration values remain")
    if leftovers:
        raise PermanentError("purge verification failed: " + "; ".join(leftovers))
    return {
        "database_exists": False,
        "storage_objects": 0,
        "search_documents": 0,
        "config_values": 0,
    }


def tombstone(ctx: StepContext) -> dict[str, Any]:
    op = ctx.operation
    receipt = {
        "wiki_id": ctx.wiki.id,
        "operation_id": str(op.id),
        "actor": op.actor.get_username() if op.actor else None,
        "purged_at": timezone.now().isoformat(),
        "removed": {
            "database": op.result_of("purge_database"),
            "storage": op.result_of("purge_storage"),
            "search": op.result_of("purge_search_documents"),
            "config": op.result_of("remove_config").get("values", {}),
        },
        "verification": op.result_of("verify_purged"),
    }
    with transaction.atomic():
        _set_wiki(
            ctx.wiki,
            state=WikiState.PURGED,
            purged_at=timezone.now(),
            read_only=True,
            purge_after=None,
            purge_receipt=receipt,
        )
        placement.release(ctx.wiki.cluster)
    publishing.publish_wiki_now(ctx.wiki.id)
    return {"receipt": "stored"}


# --- abandon (a failed create, before the wiki held any user data) -----------------------


def _create_step_touched(ctx: StepContext, step_name: str) -> bool:
    return bool(ctx.operation.params.get("touched", {}).get(step_name))


def compensate_database(ctx: StepContext) -> dict[str, Any]:
    if not _create_step_touched(ctx, "create_database"):
        return {"skipped": "the create operation never made a database"}
    return database_driver().purge(ctx.resources)


def compensate_storage(ctx: StepContext) -> dict[str, Any]:
    if not _create_step_touched(ctx, "create_storage"):
        return {"skipped": "the create operation never made a storage namespace"}
    return storage_driver().purge(ctx.resources)


def compensate_search(ctx: StepContext) -> dict[str, Any]:
    return search_driver().purge(ctx.resources)


def free_wiki_id(ctx: StepContext) -> dict[str, Any]:
    # By wiki_ref: once the row is deleted the operation's wiki is NULL, and a run repeated
    # after a crash must still succeed, or the open abandon blocks the id for good.
    wiki_id = ctx.operation.wiki_ref
    with transaction.atomic():
        cluster = (
            Wiki.objects.filter(pk=wiki_id, state=WikiState.PROVISIONING)
            .values_list("cluster", flat=True)
            .first()
        )
        deleted, _ = Wiki.objects.filter(pk=wiki_id, state=WikiState.PROVISIONING).delete()
        if deleted and cluster is not None:
            placement.release(cluster)
    # activate may have written the file before a crash kept the wiki from turning active.
    exports.remove_wiki_file(wiki_id)
    transaction.on_commit(publishing.request_publish)
    return {"wiki_deleted": bool(deleted)}


StepFunction = Callable[[StepContext], dict[str, Any]]

PLANS: dict[str, list[StepFunction]] = {
    OperationKind.CREATE: [
        create_database,
        run_post_create_hook,
        create_storage,
        ensure_search_indices,
        activate,
    ],
    OperationKind.CLOSE: [publish_closed],
    OperationKind.REOPEN: [publish_reopened],
    OperationKind.ARCHIVE: [
        publish_read_only,
        dump_database,
        export_search_documents,
        inventory_storage,
        write_archive_manifest,
        publish_offline,
        drop_database,
        delete_search_documents,
        mark_archived,
    ],
    OperationKind.UNARCHIVE: [
        verify_archive,
        restore_database,
        reindex_search_documents,
        reopen_storage,
        publish_read_write,
    ],
    OperationKind.PURGE: [
        purge_database,
        purge_storage,
        purge_backups,
        purge_search_documents,
        remove_config,
        verify_purged,
        tombstone,
    ],
    OperationKind.ABANDON: [
        compensate_database,
        compensate_storage,
        compensate_search,
        free_wiki_id,
    ],
}
# The backup part of each plan that takes one: the same steps archive runs, into a backup.
BACKUP_STEPS: list[StepFunction] = [
    dump_database,
    export_search_documents,
    inventory_storage,
    write_archive_manifest,
    record_backup,
]
PLANS[OperationKind.BACKUP] = BACKUP_STEPS
# The backup steps only when the run asks to back up first (initial_steps leaves them out).
PLANS[OperationKind.MIGRATE] = [*BACKUP_STEPS, apply_migration, record_migration]
PLANS[OperationKind.RESTORE] = [
    *BACKUP_STEPS,  # the current state first
    verify_archive,
    take_offline,
    wait_for_requests,
    restore_database,
    reindex_search_documents,
    put_back_online,
]
PLANS[OperationKind.CLONE] = [
    verify_archive,
    restore_database,
    copy_storage_files,
    reindex_search_documents,
    activate,
]
STEP_FUNCTIONS: dict[str, dict[str, StepFunction]] = {
    kind: {step.__name__: step for step in plan} for kind, plan in PLANS.items()
}


def initial_steps(kind: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    plan = PLANS[kind]
    if kind == OperationKind.MIGRATE and not (params or {}).get("backup_first"):
        plan = [step for step in plan if step not in BACKUP_STEPS]
    return [{"name": step.__name__, "status": "pending"} for step in plan]
