"""`manage.py audit_export [--since TIME|ID] [--follow]`: audit events as JSON lines, for a
SIEM's file or pipe input (schema: docs/audit.md)."""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from farm import audit
from farm.api.serializers import AuditEventSerializer
from farm.models import AuditEvent

BATCH = 500


class Command(BaseCommand):
    help = (
        "Print audit events as JSON lines, in stream order. --since takes an ISO time (events "
        "from then on) or the id of the last event you have (the ones after it); --follow "
        "keeps printing new events as they commit."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", default=None, help="ISO 8601 time, or an event id")
        parser.add_argument("--follow", action="store_true", help="wait for new events")
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between polls with --follow"
        )

    def handle(self, *args, since: str | None, follow: bool, interval: float, **options):
        try:
            self._export(self._start(since), follow=follow, interval=interval)
        except KeyboardInterrupt:  # how --follow ends
            pass

    def _export(self, position: int, *, follow: bool, interval: float) -> None:
        while True:
            events = audit.events_after(position, BATCH)
            for event in events:
                self.stdout.write(json.dumps(AuditEventSerializer(event).data, sort_keys=True))
            self.stdout.flush()
            if events:
                position = events[-1].sequence or position
                continue
            if not follow:
                return
            time.sleep(interval)

    def _start(self, since: str | None) -> int:
        if since is None:
            return 0
        if since.isdigit():
            try:
                return audit.position_of_event(int(since))
            except AuditEvent.DoesNotExist as exc:
                raise CommandError(f"--since {since}: there is no audit event {since}") from exc
        moment = parse_datetime(since)
        if moment is None:
            raise CommandError(f"--since {since!r} is neither an ISO 8601 time nor an event id")
        return audit.position_before_time(make_aware(moment) if is_naive(moment) else moment)
