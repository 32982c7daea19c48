"""`manage.py wiki <action>`: the lifecycle from the command line, through the services."""

from __future__ import annotations

import json
import os
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from farm import policies
from farm import services as registry
from farm.errors import ServiceError
from farm.models import Wiki, WikiState
from provisioning import restores, services
from provisioning.management.console import command_console, progress_bars
from provisioning.models import Operation, OperationState, UnarchiveRequest, WikiUsage


class Command(BaseCommand):
    help = "Create, archive, unarchive, purge and inspect wikis (runs through the worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--actor",
            default=os.environ.get("FARM_CLI_ACTOR", "ops"),
            help="username the action is done as (default $FARM_CLI_ACTOR or 'ops')",
        )
        actions = parser.add_subparsers(dest="action", required=True)

        create = actions.add_parser("create", help="create a wiki")
        create.add_argument("wiki_id")
        create.add_argument("--family", default="default")
        create.add_argument("--sitename")
        create.add_argument("--language", default="en")
        create.add_argument("--tag", action="append", default=[], dest="tags")
        create.add_argument("--owner", action="append", default=[], dest="owners")

        update = actions.add_parser(
            "update", help="change a wiki's sitename, tags or owners (given ones replace)"
        )
        update.add_argument("wiki_id")
        update.add_argument("--sitename")
        update.add_argument("--tag", action="append", dest="tags", help="repeat for several")
        update.add_argument("--no-tags", action="store_true", help="remove every tag")
        update.add_argument("--owner", action="append", dest="owners", help="repeat for several")

        close = actions.add_parser("close", help="make a wiki read-only, still served")
        close.add_argument("wiki_id")
        close.add_argument("--reason", required=True, help="shown by MediaWiki")
        actions.add_parser("reopen", help="make a closed wiki writable").add_argument("wiki_id")
        actions.add_parser("archive", help="archive a wiki").add_argument("wiki_id")
        unarchive = actions.add_parser("unarchive", help="request the unarchive of a wiki")
        unarchive.add_argument("wiki_id")
        unarchive.add_argument("--reason", required=True)
        for name in ("approve", "deny"):
            decide = actions.add_parser(name, help=f"{name} a pending unarchive request")
            decide.add_argument("wiki_id", help="wiki id (its pending request is decided)")
            decide.add_argument("--note", default="")
        purge = actions.add_parser("purge", help="purge a wiki for good (ops)")
        purge.add_argument("wiki_id")
        purge.add_argument("--confirm", help="the wiki id again; required for an active wiki")
        actions.add_parser("retry", help="retry a wiki's failed operation").add_argument("wiki_id")
        actions.add_parser("abandon", help="abandon a wiki's failed create").add_argument("wiki_id")
        actions.add_parser("status", help="show a wiki and its operations").add_argument("wiki_id")
        actions.add_parser("list", help="list wikis")
        actions.add_parser(
            "backups", help="list what a wiki can be restored from: its backups and archive"
        ).add_argument("wiki_id")
        restore = actions.add_parser(
            "restore", help="restore a wiki in place (ops), or as a new wiki with --as"
        )
        restore.add_argument("wiki_id")
        restore.add_argument(
            "--from", dest="source_id", required=True, help="a backup or archive id (`backups`)"
        )
        restore.add_argument("--as", dest="new_id", help="restore as a new wiki with this id")
        restore.add_argument("--sitename", help="the new wiki's sitename (default: the source's)")
        restore.add_argument("--confirm", help="the wiki id again; required to restore in place")
        for name in (
            "create",
            "close",
            "reopen",
            "archive",
            "approve",
            "purge",
            "retry",
            "abandon",
            "restore",
        ):
            actions.choices[name].add_argument(
                "--wait", action="store_true", help="follow the operation until it ends"
            )

    def handle(self, *args, **options) -> None:
        actor = self._actor(options["actor"])
        action = options["action"]
        try:
            if action in {"status", "list"}:
                return getattr(self, f"_{action}")(actor, options)
            result = getattr(self, f"_{action}")(actor, options)
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if isinstance(result, Operation):
            self.stdout.write(
                f"{result.kind} operation {result.pk} for {result.wiki_ref}: {result.state}"
            )
            if options.get("wait"):
                self._follow(result)
        elif isinstance(result, Wiki):
            tags = ", ".join(result.tags.values_list("name", flat=True)) or "no tags"
            self.stdout.write(f"wiki {result.pk} updated: {result.sitename!r}, {tags}")
        elif isinstance(result, UnarchiveRequest):
            self.stdout.write(f"unarchive request {result.pk} for {result.wiki_id}: {result.state}")

    def _actor(self, username: str):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"no user {username!r}; pass --actor or run `manage.py farm_seed_demo`"
            )
        return user

    def _create(self, actor, options):
        owners = list(get_user_model().objects.filter(username__in=options["owners"]))
        if len(owners) != len(set(options["owners"])):
            raise CommandError(f"unknown owner among {options['owners']}")
        return services.wiki_create(
            actor=actor,
            wiki_id=options["wiki_id"],
            family=options["family"],
            sitename=options["sitename"] or options["wiki_id"],
            language=options["language"],
            tags=options["tags"],
            owners=owners or None,
        )

    def _update(self, actor, options):
        return registry.wiki_update(
            actor=actor,
            wiki_id=options["wiki_id"],
            sitename=options["sitename"],
            tags=[] if options["no_tags"] else options["tags"],
            owners=options["owners"],
        )

    def _close(self, actor, options):
        return services.wiki_close(
            actor=actor, wiki_id=options["wiki_id"], reason=options["reason"]
        )

    def _reopen(self, actor, options):
        return services.wiki_reopen(actor=actor, wiki_id=options["wiki_id"])

    def _archive(self, actor, options):
        return services.wiki_archive(actor=actor, wiki_id=options["wiki_id"])

    def _unarchive(self, actor, options):
        return services.unarchive_request(
            actor=actor, wiki_id=options["wiki_id"], reason=options["reason"]
        )

    def _pending_request_id(self, actor, wiki_id: str) -> int:
        request = (
            UnarchiveRequest.objects.for_user(actor)
            .filter(wiki_id=wiki_id, state="pending")
            .first()
        )
        if request is None:
            raise CommandError(f"wiki {wiki_id} has no pending unarchive request")
        return request.pk

    def _approve(self, actor, options):
        request_id = self._pending_request_id(actor, options["wiki_id"])
        return services.unarchive_approve(actor=actor, request_id=request_id, note=options["note"])

    def _deny(self, actor, options):
        request_id = self._pending_request_id(actor, options["wiki_id"])
        return services.unarchive_deny(actor=actor, request_id=request_id, note=options["note"])

    def _purge(self, actor, options):
        return services.wiki_purge(
            actor=actor, wiki_id=options["wiki_id"], confirm=options["confirm"]
        )

    def _open_operation(self, actor, wiki_id: str) -> Operation:
        operation = Operation.objects.for_user(actor).filter(open_for_wiki=wiki_id).first()
        if operation is None:
            raise CommandError(f"wiki {wiki_id} has no open operation")
        return operation

    def _retry(self, actor, options):
        operation = self._open_operation(actor, options["wiki_id"])
        return services.operation_retry(actor=actor, operation_id=operation.pk)

    def _abandon(self, actor, options):
        operation = self._open_operation(actor, options["wiki_id"])
        return services.operation_abandon(actor=actor, operation_id=operation.pk)

    def _backups(self, actor, options) -> None:
        wiki = policies.visible_wiki(actor, options["wiki_id"])
        for source in restores.restore_sources(wiki):
            details = (
                f"{source['backup_kind']:<16} {source['created_at'][:19]}  {source['bytes']} bytes"
                if source["kind"] == "backup"
                else "the wiki's archive"
            )
            self.stdout.write(f"{source['id']}  {source['kind']:<7} {details}")

    def _restore(self, actor, options):
        if options["new_id"] is None:
            return restores.wiki_restore(
                actor=actor,
                wiki_id=options["wiki_id"],
                source_id=options["source_id"],
                confirm=options["confirm"],
            )
        if options["confirm"] is not None:
            raise CommandError("--confirm is for a restore in place; --as makes a new wiki")
        return restores.wiki_clone(
            actor=actor,
            wiki_id=options["wiki_id"],
            source_id=options["source_id"],
            new_id=options["new_id"],
            sitename=options["sitename"],
        )

    def _status(self, actor, options) -> None:
        wiki = Wiki.objects.for_user(actor).filter(pk=options["wiki_id"]).first()
        if wiki is None:
            raise CommandError(f"wiki {options['wiki_id']!r} not found")
        # A purged wiki is gone, not read-only: its tombstone keeps the flag it last had.
        read_only = wiki.read_only and wiki.state != WikiState.PURGED
        self.stdout.write(
            f"{wiki.id}: {wiki.state}{' (read-only)' if read_only else ''}, "
            f"family {wiki.family}, database {wiki.database_name}, storage {wiki.storage_prefix}"
        )
        self.stdout.write(f"size class {wiki.size_class}: {self._usage(wiki)}")
        if wiki.cloned_from:
            self.stdout.write(f"cloned from {json.dumps(wiki.cloned_from)}")
        if wiki.purge_receipt:
            self.stdout.write("purge receipt: " + json.dumps(wiki.purge_receipt, indent=2))
        for operation in wiki.operations.order_by("created_at"):
            self.stdout.write(
                f"  {operation.created_at:%Y-%m-%d %H:%M:%S} {operation.kind:<9} {operation.state}"
            )
            for step in operation.steps:
                error = f"  {step['error']}" if step.get("error") else ""
                self.stdout.write(f"      {step['status']:<8} {step['name']}{error}")

    def _list(self, actor, options) -> None:
        for wiki in Wiki.objects.for_user(actor).select_related("family"):
            self.stdout.write(
                f"{wiki.id:<32} {wiki.state:<12} {wiki.family.name:<12} {wiki.sitename}"
            )

    @staticmethod
    def _usage(wiki: Wiki) -> str:
        usage = WikiUsage.objects.filter(wiki=wiki).first()
        if usage is None:
            return "never inspected (`manage.py run inventory`)"
        if usage.error:
            return f"not inspectable at {usage.inspected_at:%Y-%m-%d %H:%M}: {usage.error}"
        return (
            f"{usage.pages} pages, {usage.database_bytes} database bytes, "
            f"{usage.storage_objects} files ({usage.storage_bytes} bytes), "
            f"{usage.search_documents} search documents, "
            f"inspected {usage.inspected_at:%Y-%m-%d %H:%M}"
        )

    def _follow(self, operation: Operation, poll: float = 0.2) -> None:
        """A bar of the operation's steps until it ends; exit non-zero if it failed."""
        with progress_bars(command_console(self.stdout), label_width=0) as progress:
            bar = progress.add_task(f"{operation.kind} {operation.wiki_ref}", detail="")
            while True:
                operation.refresh_from_db()
                done = sum(1 for step in operation.steps if step["status"] == "done")
                detail = f"{operation.state} {operation.current_step}".rstrip()
                progress.update(bar, total=len(operation.steps), completed=done, detail=detail)
                if operation.state not in (OperationState.PENDING, OperationState.RUNNING):
                    break
                time.sleep(poll)
        if operation.state in (OperationState.FAILED, OperationState.ABANDONED):
            raise CommandError(
                f"{operation.kind} of {operation.wiki_ref} {operation.state} at "
                f"{operation.failed_step}: {operation.error}"
            )
