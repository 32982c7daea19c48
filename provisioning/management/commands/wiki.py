"""`manage.py wiki <action>`: the lifecycle from the command line, through the services."""

from __future__ import annotations

import json
import os
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from farm import services as registry
from farm.errors import ServiceError
from farm.models import Wiki, WikiState
from provisioning import services
from provisioning.models import Operation, OperationState, UnarchiveRequest


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
        for name in (
            "create",
            "close",
            "reopen",
            "archive",
            "approve",
            "purge",
            "retry",
            "abandon",
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

    def _follow(self, operation: Operation, poll: float = 0.2) -> None:
        """Print progress until the operation ends; exit non-zero if it failed."""
        shown = None
        while True:
            operation.refresh_from_db()
            total = len(operation.steps)
            done = sum(1 for step in operation.steps if step["status"] == "done")
            bar = "#" * done + "." * (total - done)
            line = f"[{bar}] {done}/{total} {operation.state} {operation.current_step}"
            if line != shown:
                self.stdout.write(line)
                shown = line
            if operation.state == OperationState.SUCCEEDED:
                return
            if operation.state in (OperationState.FAILED, OperationState.ABANDONED):
                raise CommandError(
                    f"{operation.kind} of {operation.wiki_ref} {operation.state} at "
                    f"{operation.failed_step}: {operation.error}"
                )
            time.sleep(poll)
