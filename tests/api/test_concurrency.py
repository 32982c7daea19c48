"""Concurrent requests on the registry: 50 parallel creates, a quota raced by one user, and
one Idempotency-Key sent 20 times at once answer without a single 5xx, and the registry
holds exactly what the answers say. CI runs these on a MariaDB registry too (.ci/run), where
lock conflicts (deadlocks, lock waits) happen for real."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from farm.api.tokens import token_create
from farm.models import Family, Wiki
from provisioning.models import Operation

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def _no_create_throttle(settings):
    settings.FARM_API_CREATE_RATE = "100000/hour"
    settings.FARM_WIKI_QUOTA = 1000
    from django.core.cache import cache

    cache.clear()
    # A transaction test flushes the tables afterwards, the migration's rows too.
    Family.objects.get_or_create(name="default")


def post_all(
    server: str, requests: list[tuple[str, str, dict, dict]], workers: int = 10
) -> list[tuple[int, dict]]:
    """POST each (token, path, body, headers) over HTTP to the live server from `workers`
    threads, the first `workers` released at once (as a script's connection pool does)."""
    barrier = threading.Barrier(workers)

    def post(numbered):
        number, (token, path, body, headers) = numbered
        request = urllib.request.Request(  # noqa: S310 - the test's own live server
            server + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Token {token}",
                "Content-Type": "application/json",
                **headers,
            },
        )
        if number < workers:
            barrier.wait(timeout=30)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return error.code, json.loads(raw or b"{}")
            except ValueError:
                return error.code, {"raw": raw[:300].decode("utf-8", "replace")}

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(post, enumerate(requests)))


def write_token(user) -> str:
    return token_create(actor=user, name="concurrency", scope="write")[1]


def test_fifty_concurrent_creates_by_two_admins(
    live_server, farm_drivers, admin_user_a, admin_user_b
):
    tokens = [write_token(admin_user_a), write_token(admin_user_b)]
    # As scripts send them: each with its own Idempotency-Key.
    requests = [
        (
            tokens[n % 2],
            "/api/v1/wikis/",
            {"id": f"conc{n:02d}", "sitename": f"C {n}"},
            {"Idempotency-Key": f"create-conc{n:02d}"},
        )
        for n in range(50)
    ]
    answers = post_all(live_server.url, requests)
    statuses = [status for status, _ in answers]
    assert [s for s in statuses if s >= 500] == [], answers
    assert statuses.count(202) == 50, answers
    assert Wiki.objects.filter(id__startswith="conc").count() == 50
    assert Operation.objects.filter(wiki_ref__startswith="conc").count() == 50


def test_the_quota_holds_exactly_under_a_race(live_server, farm_drivers, admin_user_a, settings):
    settings.FARM_WIKI_QUOTA = 3
    token = write_token(admin_user_a)
    requests = [
        (
            token,
            "/api/v1/wikis/",
            {"id": f"quota{n:02d}", "sitename": f"Q {n}"},
            {"Idempotency-Key": f"create-quota{n:02d}"},
        )
        for n in range(20)
    ]
    answers = post_all(live_server.url, requests)
    statuses = sorted(status for status, _ in answers)
    assert [s for s in statuses if s >= 500] == [], answers
    assert statuses.count(202) == 3, answers
    refused = [payload for status, payload in answers if status != 202]
    assert all(payload.get("code") == "quota_exceeded" for payload in refused), refused
    assert Wiki.objects.filter(owners=admin_user_a).count() == 3


def test_one_idempotency_key_sent_twenty_times_at_once(live_server, farm_drivers, admin_user_a):
    token = write_token(admin_user_a)
    body = {"id": "onlyone", "sitename": "Only one"}
    headers = {"Idempotency-Key": "same-key-20"}
    answers = post_all(live_server.url, [(token, "/api/v1/wikis/", body, headers)] * 20)
    statuses = [status for status, _ in answers]
    assert [s for s in statuses if s >= 500] == [], answers
    assert set(statuses) <= {202, 409}, answers
    first = [payload for status, payload in answers if status == 202]
    assert first and all(payload["id"] == first[0]["id"] for payload in first)
    in_progress = [payload for status, payload in answers if status == 409]
    assert all(payload.get("code") == "idempotency_in_progress" for payload in in_progress)
    assert Operation.objects.filter(wiki_ref="onlyone").count() == 1
