"""The permission matrix: every endpoint x role, against wikis owned by alice.

One table says what each role gets; the test builds exactly the world the endpoint needs
(through the services and the engine), calls it as the role and checks the status. Another
admin (bob) gets 404 for alice's things: they are filtered out, not forbidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator

from farm.api.tokens import token_create
from farm.models import AuditEvent
from farm.services import tag_create
from provisioning import services
from provisioning.models import Operation
from tests.api.conftest import API, session_client

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "owner", "other_admin", "ops", "auditor")
PLACEHOLDER = re.compile(r"<(\w+)>")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: dict | None = None
    # Expected status per role, in the order of ROLES.
    expect: tuple[int, ...] = ()


def row(method, path, expect, body=None):
    return Endpoint(method=method, path=path, body=body, expect=expect)


# Expected statuses, in the order of ROLES: anonymous, owner, other admin, ops, auditor.
MATRIX = {
    "wiki list": row("get", "/wikis/", (401, 200, 200, 200, 200)),
    "wiki create": row(
        "post", "/wikis/", (401, 202, 202, 202, 403), {"id": "newwiki", "sitename": "New"}
    ),
    "wiki detail": row("get", "/wikis/<active>/", (401, 200, 404, 200, 200)),
    "wiki update": row(
        "patch", "/wikis/<active>/", (401, 200, 404, 200, 403), {"sitename": "Renamed"}
    ),
    "wiki archive": row("post", "/wikis/<active>/archive/", (401, 202, 404, 202, 403)),
    "archive archived": row("post", "/wikis/<archived>/archive/", (401, 409, 404, 409, 403)),
    "wiki purge": row(
        "post", "/wikis/<archived>/purge/", (401, 403, 404, 202, 403), {"confirm": "<archived>"}
    ),
    "unarchive request": row(
        "post",
        "/unarchive-requests/",
        (401, 201, 404, 201, 403),
        {"wiki": "<archived>", "reason": "needed again"},
    ),
    "request of active": row(
        "post",
        "/unarchive-requests/",
        (401, 409, 404, 409, 403),
        {"wiki": "<active>", "reason": "needed again"},
    ),
    "request list": row("get", "/unarchive-requests/", (401, 200, 200, 200, 200)),
    "request detail": row("get", "/unarchive-requests/<request>/", (401, 200, 404, 200, 200)),
    "request approve": row(
        "post", "/unarchive-requests/<request>/approve/", (401, 403, 404, 202, 403)
    ),
    "request deny": row(
        "post", "/unarchive-requests/<request>/deny/", (401, 403, 404, 200, 403), {"note": "no"}
    ),
    "operation list": row("get", "/operations/", (401, 200, 200, 200, 200)),
    "operation detail": row("get", "/operations/<operation>/", (401, 200, 404, 200, 200)),
    "operation retry": row("post", "/operations/<failed>/retry/", (401, 202, 404, 202, 403)),
    "operation abandon": row("post", "/operations/<failed>/abandon/", (401, 202, 404, 202, 403)),
    "retry succeeded": row("post", "/operations/<operation>/retry/", (401, 409, 404, 409, 403)),
    "family list": row("get", "/families/", (401, 200, 200, 200, 200)),
    "family detail": row("get", "/families/default/", (401, 200, 200, 200, 200)),
    "family create": row(
        "post",
        "/families/",
        (401, 403, 403, 201, 403),
        {"name": "client-a", "database_pattern": "{id}wiki"},
    ),
    "tag list": row("get", "/tags/", (401, 200, 200, 200, 200)),
    "tag detail": row("get", "/tags/<tag>/", (401, 200, 200, 200, 200)),
    "tag create": row(
        "post", "/tags/", (401, 403, 403, 201, 403), {"name": "beta-features", "priority": 5}
    ),
    "reserved list": row("get", "/reserved-names/", (401, 200, 200, 200, 200)),
    "reserved detail": row("get", "/reserved-names/www/", (401, 200, 200, 200, 200)),
    "reserved create": row(
        "post",
        "/reserved-names/",
        (401, 403, 403, 201, 403),
        {"name": "intranet", "reason": "planned"},
    ),
    "audit list": row("get", "/audit-events/", (401, 403, 403, 200, 200)),
    "audit detail": row("get", "/audit-events/<audit_event>/", (401, 403, 403, 200, 200)),
    "token list": row("get", "/tokens/", (401, 200, 200, 200, 200)),
    "token create": row(
        "post", "/tokens/", (401, 201, 201, 201, 201), {"name": "ci", "scope": "read"}
    ),
    "token detail": row("get", "/tokens/<token>/", (401, 200, 404, 200, 404)),
    "token revoke": row("delete", "/tokens/<token>/", (401, 204, 404, 204, 404)),
    "schema": row("get", "/schema/", (200, 200, 200, 200, 200)),
}


class World:
    """Alice's things, each made on first use so a case pays only for what it needs."""

    def __init__(self, users, factory):
        self.users = users
        self.factory = factory
        self.alice = users["owner"]

    @cached_property
    def active(self):
        return self.factory.active(self.alice, "alpha").id

    @cached_property
    def archived(self):
        return self.factory.archived(self.alice, "beta").id

    @cached_property
    def request(self):
        self.factory.archived(self.alice, "gamma")
        return services.unarchive_request(actor=self.alice, wiki_id="gamma", reason="again").pk

    @cached_property
    def operation(self):
        self.active  # noqa: B018  (made for its create operation)
        return Operation.objects.get(wiki_ref="alpha").pk

    @cached_property
    def failed(self):
        return self.factory.failed(self.alice, "delta").pk

    @cached_property
    def tag(self):
        return tag_create(actor=self.users["ops"], name="private").name

    @cached_property
    def audit_event(self):
        self.active  # noqa: B018
        return AuditEvent.objects.filter(target_id="alpha").first().pk

    @cached_property
    def token(self):
        return token_create(actor=self.alice, name="alice's", scope="read")[0].pk

    def fill(self, value):
        """Replace each <thing> in a path or body by the id of that thing, made now."""
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda match: str(getattr(self, match[1])), value)
        return value


@pytest.fixture
def users(admin_user_a, admin_user_b, ops_user, auditor_user):
    return {
        "anonymous": None,
        "owner": admin_user_a,
        "other_admin": admin_user_b,
        "ops": ops_user,
        "auditor": auditor_user,
    }


CASES = [
    pytest.param(name, role, endpoint.expect[index], id=f"{name}-{role}")
    for name, endpoint in MATRIX.items()
    for index, role in enumerate(ROLES)
]


@pytest.mark.parametrize(("endpoint_name", "role", "expected"), CASES)
def test_permission_matrix(endpoint_name, role, expected, users, wiki_factory):
    endpoint = MATRIX[endpoint_name]
    world = World(users, wiki_factory)
    path = API + world.fill(endpoint.path)
    body = world.fill(endpoint.body) if endpoint.body is not None else None
    client = session_client(users[role])
    response = getattr(client, endpoint.method)(path, body, format="json")
    assert response.status_code == expected, response.content
    if expected >= 400:
        assert {"code", "message"} <= set(response.json())
    if expected == 202:
        assert response["Location"].endswith(f"/api/v1/operations/{response.json()['id']}/")


def test_matrix_covers_every_documented_operation():
    """An endpoint added to farm.api.views without a row in the table fails here. (Other
    API modules, such as the configuration API, keep their own matrices.)"""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    rows = {(endpoint.method, PLACEHOLDER.sub("x", endpoint.path)) for endpoint in MATRIX.values()}
    missing = []
    for path, operations in schema["paths"].items():
        if _view_module(re.sub(r"\{\w+\}", "x", path)) != "farm.api.views":
            continue
        template = re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", path.removeprefix(API)) + "$")
        for method in operations:
            if not any(m == method and template.match(p) for m, p in rows):
                missing.append(f"{method.upper()} {path}")
    assert len(rows) >= 30
    assert not missing, f"endpoints missing from the permission matrix: {missing}"


def _view_module(path: str) -> str:
    view = resolve(path).func
    return getattr(view, "cls", view).__module__
