"""The audit export for a SIEM: `audit_export` and the stream endpoint hand out every
committed event once, in stream order, even when transactions commit out of id order
(ADR 8). CI runs this module on a MariaDB registry too, where that really happens."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from farm import audit
from farm.models import AuditEvent, Tag
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db


def write_event(actor, n: int) -> AuditEvent:
    return audit.audit(actor=actor, action="test.event", target=actor, after={"n": n})


def export(*args: str) -> list[dict]:
    out = StringIO()
    call_command("audit_export", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


EVENT_KEYS = {
    "id",
    "sequence",
    "created_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "operation_id",
    "request_id",
}


def test_audit_export_prints_json_lines_in_stream_order(ops_user):
    events = [write_event(ops_user, n) for n in range(3)]
    lines = export()
    mine = [line for line in lines if line["action"] == "test.event"]
    assert [line["after"]["n"] for line in mine] == [0, 1, 2]
    assert set(mine[0]) == EVENT_KEYS
    assert mine[0]["actor"] == "opsuser" and mine[0]["target_type"] == "user"
    sequences = [line["sequence"] for line in lines]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)

    # --since an event id: the ones after it, as a consumer resumes.
    assert [line["id"] for line in export("--since", str(events[0].pk))][-2:] == [
        events[1].pk,
        events[2].pk,
    ]
    assert export("--since", str(events[2].pk)) == []


def test_audit_export_since_a_time(ops_user):
    write_event(ops_user, 0)
    AuditEvent.objects.update(created_at=timezone.now() - timedelta(days=2))
    write_event(ops_user, 1)
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert [line["after"]["n"] for line in export("--since", since)] == [1]
    assert export("--since", (timezone.now() + timedelta(hours=1)).isoformat()) == []


def test_audit_export_refuses_a_bad_since(ops_user):
    with pytest.raises(CommandError, match="neither an ISO 8601 time nor an event id"):
        export("--since", "yesterday")
    with pytest.raises(CommandError, match="no audit event 999999"):
        export("--since", "999999")


def test_the_stream_endpoint_pages_with_a_cursor(auditor_user, ops_user):
    client, _ = token_client(auditor_user, "read")
    for n in range(5):
        write_event(ops_user, n)
    first = client.get("/api/v1/audit-events/stream/?limit=2").json()
    assert len(first["results"]) == 2
    assert first["cursor"] == first["results"][-1]["sequence"]
    seen = [event["id"] for event in first["results"]]
    page = first
    while page["results"]:
        page = client.get(page["next"]).json()
        seen += [event["id"] for event in page["results"]]
    assert seen == sorted(AuditEvent.objects.values_list("id", flat=True))
    # The last, empty page still says where to go on from.
    assert page["cursor"] == max(AuditEvent.objects.values_list("sequence", flat=True))
    write_event(ops_user, 99)
    (newest,) = client.get(page["next"]).json()["results"]
    assert newest["after"] == {"n": 99}


@pytest.mark.parametrize("query", ["after=-1", "after=x", "limit=0", "limit=1001"])
def test_the_stream_endpoint_refuses_bad_parameters(auditor_user, query):
    client, _ = token_client(auditor_user, "read")
    response = client.get(f"/api/v1/audit-events/stream/?{query}")
    assert response.status_code == 400
    assert response.json()["field"] == query.split("=")[0]


def test_only_ops_and_auditors_read_the_stream(admin_user_a):
    client, _ = token_client(admin_user_a, "read")
    assert client.get("/api/v1/audit-events/stream/").status_code == 403


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_audit_export_follow_prints_events_as_they_commit(ops_user, tmp_path):
    write_event(ops_user, 0)
    environment = {
        **os.environ,
        "FARM_DATA_DIR": str(settings.DATA_DIR),
        "DATABASE_URL": os.environ.get("DATABASE_URL")
        or f"sqlite:///{connection.settings_dict['NAME']}",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "test"),
    }
    if connection.vendor == "mysql":  # the test database, not the configured one
        environment["DATABASE_URL"] = environment["DATABASE_URL"].rsplit("/", 1)[0] + (
            "/" + connection.settings_dict["NAME"]
        )
    follower = subprocess.Popen(
        [sys.executable, "manage.py", "audit_export", "--follow", "--interval", "0.1"],
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["after"] == {"n": 0}
        write_event(ops_user, 1)
        second = json.loads(follower.stdout.readline())
        assert second["after"] == {"n": 1}
    finally:
        follower.terminate()
        follower.wait(timeout=10)


# --- under concurrent writes ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_late_commit_is_handed_out_not_skipped(ops_user):
    """An event whose transaction commits after a later id's: a cursor on ids has moved
    past it when it appears; the stream hands it out next."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: commits never come out of id order")
    written, release = threading.Event(), threading.Event()
    late: list[AuditEvent] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                late.append(write_event(ops_user, 1))
                written.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert written.wait(timeout=30)
    early = write_event(ops_user, 2)  # a higher id, committed first
    first_page = audit.events_after(0, 100)
    assert [event.pk for event in first_page] == [early.pk]
    release.set()
    thread.join(timeout=30)
    (lower,) = late
    assert lower.pk < early.pk
    assert not AuditEvent.objects.filter(pk__gt=early.pk).exists()  # what an id cursor sees
    assert [event.pk for event in audit.events_after(first_page[-1].sequence, 100)] == [lower.pk]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_reader_paging_during_concurrent_writes_gets_every_event_once(ops_user):
    writers, per_writer = 6, 25
    done = threading.Event()
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        rng = random.Random(number)  # noqa: S311 - test timing, not crypto
        try:
            for n in range(per_writer):
                with transaction.atomic():
                    write_event(ops_user, number * 1000 + n)
                    # Held open a moment after the insert: commits come out of id order.
                    time.sleep(rng.uniform(0, 0.01))
                    Tag.objects.exists()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    received: list[int] = []

    def reader() -> None:
        position = 0
        try:
            while True:
                finished = done.is_set()  # read before the page: the last pass drains
                page = audit.events_after(position, 7)
                received.extend(event.pk for event in page)
                if page:
                    position = page[-1].sequence
                elif finished:
                    return
                else:
                    time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    reading = threading.Thread(target=reader)
    reading.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    reading.join(timeout=120)
    assert not errors, errors
    written = list(AuditEvent.objects.filter(action="test.event").values_list("pk", flat=True))
    assert len(written) == writers * per_writer
    assert len(received) == len(set(received)), "an event was handed out twice"
    assert sorted(received) == sorted(AuditEvent.objects.values_list("pk", flat=True))
