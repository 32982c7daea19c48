"""`manage.py run`: farm-wide runs (backup, migrate, inventory) from the command line.

Starting a run prints only its id on stdout, so a script can keep it
(`RUN=$(manage.py run backup --all)`); what it selected, and with --wait the progress per
size class, go to stderr. --wait exits non-zero when the run halts, is cancelled or ends
with failed wikis.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from farm.errors import ServiceError
from farm.roles import sees_all_wikis
from provisioning import runs
from provisioning.management.console import command_console, progress_bars
from provisioning.models import ACTIVE_RUN_STATES, Run, RunKind, RunState

FAILED_SHOWN = 20
LISTED = 50


def comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def class_limits(value: str) -> dict[str, object]:
    """`small=4,medium=2`; a limit that is not a number goes to the service as written, which
    names the rule it breaks."""
    limits: dict[str, object] = {}
    for pair in comma_list(value):
        size_class, equals, limit = pair.partition("=")
        if not equals:
            raise CommandError(f"--parallelism takes class=number pairs, not {pair!r}")
        limits[size_class.strip()] = int(limit) if limit.strip().isdigit() else limit.strip()
    return limits


class Command(BaseCommand):
    help = "Start, follow and control farm-wide runs: backup, migrate, inventory (ops)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--actor",
            default=os.environ.get("FARM_CLI_ACTOR", "ops"),
            help="username the action is done as (default $FARM_CLI_ACTOR or 'ops')",
        )
        actions = parser.add_subparsers(dest="action", required=True)
        for kind, help_text in (
            (RunKind.BACKUP, "back up the selected wikis (nothing is dropped)"),
            (RunKind.MIGRATE, "apply a named migration: an SQL file or a command"),
            (RunKind.INVENTORY, "record usage and size class (default: every wiki)"),
        ):
            self._add_start(actions.add_parser(kind, help=help_text), kind)
        actions.add_parser("list", help="list runs, newest first")
        for name, help_text in (
            ("show", "a run's state, progress per size class and failed wikis"),
            ("halt", "stop starting wikis (running ones finish)"),
            ("resume", "go on with a halted run"),
            ("cancel", "cancel the queued wikis (running ones finish)"),
            ("retry-failed", "queue the failed wikis again"),
            ("report", "the report as JSON, or CSV with --csv"),
        ):
            control = actions.add_parser(name, help=help_text)
            control.add_argument("run_id")
            if name in ("resume", "retry-failed"):
                control.add_argument("--wait", action="store_true", help="follow the run")
        actions.choices["report"].add_argument("--csv", action="store_true")

    def _add_start(self, start: CommandParser, kind: str) -> None:
        selection = start.add_mutually_exclusive_group(required=kind != RunKind.INVENTORY)
        selection.add_argument("--all", action="store_true", help="every active or closed wiki")
        selection.add_argument("--family")
        selection.add_argument("--tag")
        selection.add_argument(
            "--class", dest="size_classes", type=comma_list, help="e.g. small,medium"
        )
        selection.add_argument("--wiki", dest="wiki_ids", type=comma_list, help="e.g. a,b")
        if kind != RunKind.INVENTORY:
            start.add_argument(
                "--parallelism", type=class_limits, help="per size class, e.g. small=4,medium=2"
            )
            start.add_argument("--halt-after", type=int, help="halt after this many failures")
            start.add_argument("--halt-share", type=float, help="halt once this share failed")
        if kind == RunKind.MIGRATE:
            start.add_argument("--name", help="the migration's name; a rerun skips done wikis")
            change = start.add_mutually_exclusive_group()
            change.add_argument("--sql", help="an SQL file (MediaWiki placeholders)")
            change.add_argument(
                "--command",
                dest="migration_command",
                help='run without a shell, e.g. "php maintenance/update.php --wiki={wiki}"',
            )
            start.add_argument("--backup-first", action="store_true")
        start.add_argument("--wait", action="store_true", help="show progress until it ends")

    def handle(self, *args, **options) -> None:
        actor = get_user_model().objects.filter(username=options["actor"]).first()
        if actor is None:
            raise CommandError(
                f"no user {options['actor']!r}; pass --actor or run `manage.py farm_seed_demo`"
            )
        action = options["action"]
        try:
            if action in RunKind.values:
                run = self._start(actor, options)
            else:
                run = getattr(self, "_" + action.replace("-", "_"))(actor, options)
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if options.get("wait") and run is not None:
            self._wait(run)

    # --- starting ---------------------------------------------------------------------------

    def _start(self, actor, options) -> Run:
        run = runs.run_create(
            actor=actor,
            kind=options["action"],
            selection=self._selection(options),
            parallelism=options.get("parallelism"),
            halt_after_failures=options.get("halt_after"),
            halt_failure_share=options.get("halt_share"),
            params=self._params(options),
        )
        self.stdout.write(run.pk)
        state = runs.progress(run)
        classes = ", ".join(f"{name} {sum(c.values())}" for name, c in state["per_class"].items())
        self._note(
            f"{run.kind} run {run.pk}: {run.state}, {state['total']} wikis"
            + (f" ({classes})" if classes else "")
        )
        return run

    @staticmethod
    def _selection(options) -> dict[str, Any]:
        for key in ("family", "tag", "size_classes", "wiki_ids"):
            if options.get(key) is not None:
                return {key: options[key]}
        return {"all": True}

    @staticmethod
    def _params(options) -> dict[str, Any] | None:
        if options["action"] != RunKind.MIGRATE:
            return None
        params: dict[str, Any] = {"migration": options["name"]}
        if options["sql"] is not None:
            params["sql_file"] = options["sql"]
        if options["migration_command"] is not None:
            params["command"] = options["migration_command"]
        if options["backup_first"]:
            params["backup_first"] = True
        return params

    # --- controlling and reading ------------------------------------------------------------

    def _list(self, actor, options) -> None:
        # Runs are farm-wide: only ops and auditors see any.
        visible = Run.objects.all() if sees_all_wikis(actor) else Run.objects.none()
        for run in visible.order_by("-created_at")[:LISTED]:
            totals = runs.progress(run)["totals"]
            self.stdout.write(
                f"{run.pk}  {run.kind:<9} {run.state:<9} {run.created_at:%Y-%m-%d %H:%M}  "
                f"{totals['succeeded']} ok, {totals['failed']} failed, "
                f"{totals['queued'] + totals['running']} to go"
            )

    def _show(self, actor, options) -> None:
        run = runs.visible_run(actor, options["run_id"])
        state = runs.progress(run)
        self.stdout.write(f"{run.kind} run {run.pk}: {run.state}")
        if run.halted_reason:
            self.stdout.write(f"halted: {run.halted_reason}")
        self.stdout.write(f"selection {json.dumps(run.selection)}, parallelism {run.parallelism}")
        for size_class, counts in state["per_class"].items():
            done = sum(counts.values()) - counts["queued"] - counts["running"]
            described = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
            self.stdout.write(f"  {size_class:<8} {done}/{sum(counts.values())}  {described}")
        failed = runs.failed_items(run)
        for item in failed[:FAILED_SHOWN]:
            self.stdout.write(f"  failed {item.wiki_ref}: {item.output_tail}")
        if failed.count() > FAILED_SHOWN:
            self.stdout.write(f"  ... {failed.count() - FAILED_SHOWN} more: see `run report`")

    def _halt(self, actor, options) -> None:
        self._changed(runs.run_halt(actor=actor, run_id=options["run_id"]))

    def _resume(self, actor, options) -> Run:
        return self._changed(runs.run_resume(actor=actor, run_id=options["run_id"]))

    def _cancel(self, actor, options) -> None:
        self._changed(runs.run_cancel(actor=actor, run_id=options["run_id"]))

    def _retry_failed(self, actor, options) -> Run:
        return self._changed(runs.run_retry_failed(actor=actor, run_id=options["run_id"]))

    def _report(self, actor, options) -> None:
        run = runs.visible_run(actor, options["run_id"])
        if options["csv"]:
            self.stdout.write(runs.report_csv(run), ending="")
        else:
            self.stdout.write(json.dumps(runs.report(run), indent=2))

    def _changed(self, run: Run) -> Run:
        self.stdout.write(f"{run.kind} run {run.pk}: {run.state}")
        return run

    def _note(self, text: str) -> None:
        command_console(self.stderr).print(text, markup=False, soft_wrap=True)

    # --- following --------------------------------------------------------------------------

    def _wait(self, run: Run, poll: float = 1.0) -> None:
        """Bars per size class until the run leaves pending and running; non-zero exit when it
        halted, was cancelled or has failed wikis."""
        console = command_console(self.stderr)
        bars: dict[str, Any] = {}
        with progress_bars(console, label_width=8) as progress:
            while True:
                run.refresh_from_db()
                for size_class, counts in runs.progress(run)["per_class"].items():
                    total = sum(counts.values())
                    detail = f"{counts['running']} running, {counts['failed']} failed"
                    if size_class not in bars:
                        bars[size_class] = progress.add_task(size_class, total=total, detail="")
                    progress.update(
                        bars[size_class],
                        total=total,
                        completed=total - counts["queued"] - counts["running"],
                        detail=detail,
                    )
                if run.state not in ACTIVE_RUN_STATES:
                    break
                time.sleep(poll)
        report = runs.report(run)
        console.print(
            f"{run.kind} run {run.pk} {run.state}: {report['succeeded']} succeeded, "
            f"{report['failed']} failed, {report['skipped']} skipped, "
            f"{report['bytes']} bytes in {report['elapsed_seconds']:.1f} s",
            markup=False,
            soft_wrap=True,
        )
        if run.state != RunState.FINISHED or report["failed"]:
            reason = f": {run.halted_reason}" if run.halted_reason else ""
            raise CommandError(
                f"run {run.pk} {run.state} with {report['failed']} failed wikis{reason}; "
                f"see `manage.py run show {run.pk}`"
            )
