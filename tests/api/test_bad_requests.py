"""2,000 generated bad requests against every write endpoint: each answered with a 4xx in
the one error shape, none with a 5xx, and the registry unchanged afterwards.

Each request starts from a valid body and breaks it one way (a field of the wrong type,
empty, huge, with a NUL, an unknown field, a body that is not an object, JSON that does not
parse, JSON nested a thousand deep), so every one of them must be refused. A seeded
generator keeps the run the same every time.
"""

from __future__ import annotations

import json
import random

import pytest

from farm.models import (
    ApiToken,
    AuditEvent,
    ConfigValue,
    ConfigVersion,
    Family,
    IdempotencyRecord,
    ReservedName,
    SettingDefinition,
    Tag,
    Wiki,
)
from provisioning.models import Operation, UnarchiveRequest
from tests.api.conftest import API, token_client

pytestmark = pytest.mark.django_db

REQUESTS = 2000
SETTING = "/config/blocks/wiki/alpha/settings/wgRawHtml/"
# (method, path, a valid body): the generator breaks one thing in it.
ENDPOINTS = [
    ("post", "/wikis/", {"id": "newwiki", "sitename": "New", "family": "default", "tags": []}),
    ("patch", "/wikis/alpha/", {"sitename": "Renamed", "tags": [], "owners": ["alice"]}),
    ("post", "/wikis/alpha/close/", {"reason": "Frozen"}),
    ("post", "/wikis/alpha/purge/", {"confirm": "alpha"}),
    ("post", "/unarchive-requests/", {"wiki": "beta", "reason": "Needed"}),
    ("post", "/tokens/", {"name": "script", "scope": "read"}),
    ("put", SETTING, {"value": True}),
    ("post", "/config/blocks/wiki/alpha/rollback/", {"version": 1}),
    (
        "post",
        "/config/catalog/",
        {"name": "wgFarmTestSetting", "type": "string", "schema": {"maxLength": 5}},
    ),
]
WRONG_TYPES = [123, 1.5, True, [], {}, ["x"], {"a": 1}]


def broken_values(rng: random.Random, valid: object) -> object:
    """A value that no endpoint accepts in place of `valid`."""
    if isinstance(valid, str):
        choices = [*WRONG_TYPES, "", "x" * 100_000, "bad\x00value", None]
    elif isinstance(valid, list):
        choices = ["not a list", 5, {"a": 1}, [1, 2], [None], [""], ["x" * 300]]
    elif isinstance(valid, bool):
        choices = ["true", 1, 0, 1.5, [], {}, "x" * 100_000]
    elif isinstance(valid, int):
        choices = ["1", -1, 1.5, True, None, [], {}, 10**30]
    else:
        choices = [*WRONG_TYPES, None]
    return rng.choice(choices)


def broken_body(rng: random.Random, body: dict, path: str) -> str:
    kind = rng.choice(["field", "field", "field", "unknown", "shape", "syntax", "nesting"])
    if kind == "field":
        broken = dict(body)
        field = rng.choice(sorted(body))
        value = broken_values(rng, body[field])
        if path == SETTING and value is None:
            value = 123  # a null value means "remove the setting": not a bad request
        broken[field] = value
        return json.dumps(broken)
    if kind == "unknown":
        return json.dumps({**body, rng.choice(["owner", "state", "admin", "x" * 70]): "x"})
    if kind == "shape":
        return json.dumps(rng.choice([[body], "text", 42, None, True]))
    if kind == "syntax":
        text = json.dumps(body)
        return text[: rng.randrange(1, len(text))]
    depth = rng.choice([40, 1000, 20_000])
    return "[" * depth + "]" * depth


def registry_state() -> dict:
    models = (
        Wiki,
        Operation,
        UnarchiveRequest,
        ConfigValue,
        ConfigVersion,
        SettingDefinition,
        AuditEvent,
        Family,
        Tag,
        ReservedName,
        ApiToken,
        IdempotencyRecord,
    )
    state = {model.__name__: model.objects.count() for model in models}
    state["wikis"] = sorted(
        Wiki.objects.values_list("id", "state", "sitename", "read_only", "closed_reason")
    )
    return state


def test_bad_requests_are_refused_and_change_nothing(
    farm_drivers, ops_user, admin_user_a, wiki_factory, settings
):
    settings.FARM_API_CREATE_RATE = ""
    wiki_factory.active(admin_user_a, "alpha")
    wiki_factory.archived(admin_user_a, "beta")
    clients = [token_client(ops_user, "ops")[0], token_client(admin_user_a, "write")[0]]
    before = registry_state()
    rng = random.Random(20261201)  # noqa: S311 - a reproducible test, not a secret
    answers: dict[int, int] = {}
    server_errors = []
    for number in range(REQUESTS):
        method, path, body = ENDPOINTS[number % len(ENDPOINTS)]
        client = clients[number % 2]
        raw = broken_body(rng, body, path)
        response = getattr(client, method)(API + path, raw, content_type="application/json")
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        if response.status_code >= 500 or response.status_code < 400:
            server_errors.append((method, path, raw[:200], response.status_code))
            continue
        error = response.json()
        assert error["code"] and error["message"], (path, raw[:200], error)
    assert server_errors == [], server_errors[:10]
    assert sum(answers.values()) == REQUESTS
    assert registry_state() == before
