"""The registry at farm scale: farm.json export, the list API, the 304 path and the
effective configuration of one wiki, with 10,000 wikis inserted in bulk."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from bench.stats import summarize


def timed(function: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        samples.append(time.perf_counter() - started)
    return samples, result


def farm_json(*, repeat: int) -> dict:
    from farm import exports

    samples, body = timed(lambda: exports.json_bytes(exports.farm_export()), repeat)
    first, written = timed(exports.write_exports, 1)
    write_samples, written = timed(exports.write_exports, repeat)
    return {
        "farm_export_and_json": summarize(samples),
        "bytes": len(body),
        "wikis": written["wikis"],
        "write_exports": {
            "what": "every wiki's file + farm.json + siteconfig.json + hosts.json + every "
            "dblist (a file is replaced only when its bytes change); first_s wrote them all, "
            "the repeats found them unchanged",
            "first_s": round(first[0], 3),
            **summarize(write_samples),
        },
    }


LIST_FILTERS = (
    "",
    "?state=active",
    "?family=docs",
    "?tag=bench-tag-3",
    "?state=archived&family=community",
    "?owner=bench-owner-7",
    "?q=registry+wiki+12",
    "?page={deep_page}",
)


def list_api(actor, *, requests: int, extra_filters: tuple[str, ...] = ()) -> dict:
    """p50/p95 of GET /api/v1/wikis/ (a page of 50) cycling through filters."""
    from bench.lifecycle import api_client
    from farm.models import Wiki

    client = api_client(actor)
    if client is None:
        return _list_queryset(actor, requests=requests)
    deep_page = str(max(1, Wiki.objects.count() // 50 // 2))  # the middle of the list
    filters = [query.replace("{deep_page}", deep_page) for query in LIST_FILTERS + extra_filters]
    for query in filters:  # warm up: URL resolving, serializers, SQLite page cache
        _get_ok(client, f"/api/v1/wikis/{query}")
    samples: dict[str, list[float]] = {query: [] for query in filters}
    for query in itertools.islice(itertools.cycle(filters), requests):
        started = time.perf_counter()
        body = _get_ok(client, f"/api/v1/wikis/{query}")
        samples[query].append(time.perf_counter() - started)
        if query == "" and len(body["results"]) != min(50, body["count"]):
            raise RuntimeError(f"unfiltered page holds {len(body['results'])} wikis, not 50")
    every = [s for values in samples.values() for s in values]
    return {
        "what": "GET /api/v1/wikis/ through Django's test client (full middleware, session "
        "auth, DRF, filters, pagination with count), logged in as ops",
        "all": summarize(every, unit="ms", digits=1),
        "per_filter": {
            query or "(none)": summarize(values, unit="ms", digits=1)
            for query, values in samples.items()
        },
    }


def body_of(response) -> bytes:
    """The whole body, streamed or not; a streamed one's file is closed."""
    if not getattr(response, "streaming", False):
        return response.content
    try:
        return b"".join(response.streaming_content)
    finally:
        response.close()


def _get_ok(client, url: str, **headers) -> dict:
    response = client.get(url, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.content[:300]}")
    return response.json()


def _list_queryset(actor, *, requests: int) -> dict:
    from farm.models import Wiki

    def page() -> list:
        wikis = Wiki.objects.for_user(actor).filter(state="active").select_related("family")
        return [{"id": w.id, "family": w.family.name, "state": w.state} for w in wikis[:50]]

    samples, _ = timed(page, requests)
    return {
        "what": "the API is not routed: for_user(...).filter(...)[:50] serialized",
        "all": summarize(samples, unit="ms", digits=1),
    }


def farm_export_endpoint(actor, *, requests: int) -> dict:
    """GET farm.json through the export view: 200, then If-None-Match for the 304 path."""
    call = _export_caller(actor)
    if call is None:
        return {"skipped": "farm/api/config_views.py has no FarmExportView"}
    how, get = call

    def full_get():
        response = get(None)
        response.body = body_of(response)  # served from the written file: read it all
        return response

    full, first = timed(full_get, max(3, requests // 4))
    etag = first.get("ETag")
    if first.status_code != 200 or not etag:
        raise RuntimeError(f"farm.json answered {first.status_code} without an ETag")
    revalidate, response = timed(lambda: get(etag), requests)
    if response.status_code != 304:
        raise RuntimeError(f"If-None-Match with the current ETag answered {response.status_code}")
    return {
        "what": how,
        "status_200": summarize(full, unit="ms", digits=1),
        "status_304": summarize(revalidate, unit="ms", digits=1),
        "body_bytes": len(first.body),
    }


def revalidation(actor):
    """A zero-argument callable making one If-None-Match request that answers 304 (for the
    profiler), or None without an export view."""
    call = _export_caller(actor)
    if call is None:
        return None
    _, get = call
    response = get(None)
    body_of(response)
    etag = response["ETag"]
    return lambda: get(etag)


def _export_caller(actor):
    """How to GET farm.json: the routed URL if there is one, else the view itself."""
    from django.urls import NoReverseMatch, reverse

    try:
        url = reverse("api:export-farm")
    except NoReverseMatch:
        url = None
    if url is not None:
        from django.test import Client

        client = Client(HTTP_HOST="localhost")
        client.force_login(actor)

        def get_routed(etag):
            return client.get(url, headers={"If-None-Match": etag} if etag else {})

        return f"GET {url} through Django's test client", get_routed
    try:
        from farm.api.config_views import FarmExportView
    except ImportError:
        return None
    from rest_framework.test import APIRequestFactory, force_authenticate

    factory, view = APIRequestFactory(), FarmExportView.as_view()

    def get(etag):
        request = factory.get(
            "/api/v1/exports/farm.json", **({"HTTP_IF_NONE_MATCH": etag} if etag else {})
        )
        force_authenticate(request, user=actor)
        return view(request)

    return "FarmExportView called directly (its URL is not routed yet)", get


def effective_config(actor, wiki_id: str, *, requests: int) -> dict:
    try:
        from farm.config import wiki_effective_config
    except ImportError:
        return {"skipped": "farm/config.py has no wiki_effective_config"}
    wiki_effective_config(actor=actor, wiki_id=wiki_id)
    samples, result = timed(lambda: wiki_effective_config(actor=actor, wiki_id=wiki_id), requests)
    report = {
        "what": "farm.config.wiki_effective_config (with provenance) in-process",
        "wiki": wiki_id,
        "settings": len(result["settings"]),
        "service": summarize(samples, unit="ms", digits=2),
    }
    report.update(_effective_config_api(actor, wiki_id, requests=requests))
    return report


def _effective_config_api(actor, wiki_id: str, *, requests: int) -> dict:
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    try:
        url = reverse("api:config-effective", args=[wiki_id])
    except NoReverseMatch:
        return {"api": "not routed"}
    client = Client(HTTP_HOST="localhost")
    client.force_login(actor)
    _get_ok(client, url)
    samples, _ = timed(lambda: _get_ok(client, url), requests)
    return {"api": {"url": url, **summarize(samples, unit="ms", digits=2)}}
