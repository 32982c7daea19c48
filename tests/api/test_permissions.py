"""The permission matrix: every endpoint x role, against wikis owned by alice.

One table says what each role gets; the test builds exactly the world the endpoint needs
(through the services and the engine), calls it as the role and checks the status. Another
admin (bob) gets 404 for alice's things: they are filtered out, not forbidden. The table
covers every operation of the schema, the configuration API and the exports included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator

from farm import config
from farm.api.tokens import token_create
from farm.models import AuditEvent
from farm.services import tag_create
from provisioning import runs, services
from provisioning.drivers import database_driver
from provisioning.models import Operation
from provisioning.steps import wiki_resources
from tests.api.conftest import API, example_path, session_client
from tests.provisioning.helpers import run_pending, run_runs

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
    # World things made before the call that neither the path nor the body names.
    needs: tuple[str, ...] = ()


def row(method, path, expect, body=None, needs=()):
    return Endpoint(method=method, path=path, body=body, expect=expect, needs=needs)


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
    # Closing is ops' (FARM_OWNERS_MAY_CLOSE is off by default).
    "wiki close": row(
        "post", "/wikis/<active>/close/", (401, 403, 404, 202, 403), {"reason": "Frozen"}
    ),
    "wiki reopen": row("post", "/wikis/<closed>/reopen/", (401, 403, 404, 202, 403)),
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
    "audit stream": row("get", "/audit-events/stream/", (401, 403, 403, 200, 200)),
    "token list": row("get", "/tokens/", (401, 200, 200, 200, 200)),
    "token create": row(
        "post", "/tokens/", (401, 201, 201, 201, 201), {"name": "ci", "scope": "read"}
    ),
    "token detail": row("get", "/tokens/<token>/", (401, 200, 404, 200, 404)),
    "token revoke": row("delete", "/tokens/<token>/", (401, 204, 404, 204, 404)),
    "schema": row("get", "/schema/", (200, 200, 200, 200, 200)),
    # Configuration: everyone reads the catalog and the farm-wide blocks, a wiki's blocks are
    # as the wiki; wiki admins change wiki-editable settings of their own wikis, ops anything.
    "catalog list": row("get", "/config/catalog/", (401, 200, 200, 200, 200)),
    "catalog detail": row("get", "/config/catalog/wgRightsText/", (401, 200, 200, 200, 200)),
    "catalog create": row(
        "post",
        "/config/catalog/",
        (401, 403, 403, 201, 403),
        {"name": "wgExternalLinkTarget", "type": "string", "schema": {"enum": ["_blank"]}},
    ),
    "config history": row(
        "get", "/config/history/", (401, 200, 200, 200, 200), needs=("wiki_history",)
    ),
    "effective config": row("get", "/config/effective/<active>/", (401, 200, 404, 200, 200)),
    "default block": row("get", "/config/blocks/default/", (401, 200, 200, 200, 200)),
    "default set": row(
        "put",
        "/config/blocks/default/settings/wgRCMaxAge/",
        (401, 403, 403, 200, 403),
        {"value": 86400},
    ),
    "default unset": row(
        "delete",
        "/config/blocks/default/settings/wgRCMaxAge/",
        (401, 403, 403, 200, 403),
        needs=("default_history",),
    ),
    "default diff": row(
        "get",
        "/config/blocks/default/diff/?from=0&to=0",
        (401, 200, 200, 200, 200),
        needs=("default_history",),
    ),
    "default rollback": row(
        "post",
        "/config/blocks/default/rollback/",
        (401, 403, 403, 200, 403),
        {"version": 0},
        needs=("default_history",),
    ),
    "family block": row("get", "/config/blocks/family/default/", (401, 200, 200, 200, 200)),
    "family set": row(
        "put",
        "/config/blocks/family/default/settings/wgRightsText/",
        (401, 403, 403, 200, 403),
        {"value": "CC0"},
    ),
    "tag block": row("get", "/config/blocks/tag/<tag>/", (401, 200, 200, 200, 200)),
    "wiki block": row("get", "/config/blocks/wiki/<active>/", (401, 200, 404, 200, 200)),
    "wiki set": row(
        "put",
        "/config/blocks/wiki/<active>/settings/wgRightsText/",
        (401, 200, 404, 200, 403),
        {"value": "CC BY"},
    ),
    "wiki set ops-only": row(
        "put",
        "/config/blocks/wiki/<active>/settings/wgRawHtml/",
        (401, 403, 404, 200, 403),
        {"value": True},
    ),
    "wiki unset": row(
        "delete",
        "/config/blocks/wiki/<active>/settings/wgRightsText/",
        (401, 200, 404, 200, 403),
        needs=("wiki_history",),
    ),
    "wiki diff": row(
        "get",
        "/config/blocks/wiki/<active>/diff/?from=0&to=0",
        (401, 200, 404, 200, 200),
        needs=("wiki_history",),
    ),
    "wiki rollback": row(
        "post",
        "/config/blocks/wiki/<active>/rollback/",
        (401, 200, 404, 200, 403),
        {"version": 0},
        needs=("wiki_history",),
    ),
    # Exports list every wiki: ops and auditors only.
    "farm export": row("get", "/exports/farm.json", (401, 403, 403, 200, 200), needs=("active",)),
    "siteconfig export": row("get", "/exports/siteconfig.json", (401, 403, 403, 200, 200)),
    "hosts export": row("get", "/exports/hosts.json", (401, 403, 403, 200, 200)),
    "wiki export": row("get", "/exports/wikis/<active>.json", (401, 403, 403, 200, 200)),
    "unknown wiki export": row("get", "/exports/wikis/nosuch.json", (401, 403, 403, 404, 404)),
    "dblist index": row("get", "/exports/dblists/", (401, 403, 403, 200, 200)),
    "dblist": row(
        "get", "/exports/dblists/all.dblist", (401, 403, 403, 200, 200), needs=("active",)
    ),
    "unknown dblist": row("get", "/exports/dblists/nope.dblist", (401, 403, 403, 404, 404)),
    # Farm-wide runs: ops and auditors read them, only ops start or control them; a wiki
    # admin is refused outright (runs span other admins' wikis).
    "run list": row("get", "/runs/", (401, 403, 403, 200, 200), needs=("run",)),
    "run create": row(
        "post",
        "/runs/",
        (401, 403, 403, 201, 403),
        {"kind": "backup", "selection": {"family": "default"}},
        needs=("active",),
    ),
    "run preview": row(
        "post",
        "/runs/preview/",
        (401, 403, 403, 200, 403),
        {"kind": "backup", "selection": {"all": True}},
        needs=("active",),
    ),
    "run detail": row("get", "/runs/<run>/", (401, 403, 403, 200, 200)),
    "run items": row("get", "/runs/<run>/items/", (401, 403, 403, 200, 200)),
    "run report": row("get", "/runs/<run>/report/", (401, 403, 403, 200, 200)),
    "run report csv": row("get", "/runs/<run>/report/?format=csv", (401, 403, 403, 200, 200)),
    "unknown run": row("get", "/runs/20260101T000000Z-00000000/", (401, 403, 403, 404, 404)),
    "run halt": row("post", "/runs/<run>/halt/", (401, 403, 403, 200, 403)),
    "run resume": row("post", "/runs/<halted_run>/resume/", (401, 403, 403, 200, 403)),
    "run cancel": row("post", "/runs/<run>/cancel/", (401, 403, 403, 200, 403)),
    "run retry failed": row("post", "/runs/<failed_run>/retry-failed/", (401, 403, 403, 200, 403)),
    "halt finished run": row("post", "/runs/<failed_run>/halt/", (401, 403, 403, 409, 403)),
    "inventory": row("post", "/inventory/", (401, 403, 403, 201, 403), {}),
    # Restores are as the wiki: its admins see its backups and clone it, ops alone restore
    # it in place.
    "wiki backups": row("get", "/wikis/<active>/backups/", (401, 200, 404, 200, 200)),
    "wiki restore": row(
        "post",
        "/wikis/<active>/restore/",
        (401, 403, 404, 202, 403),
        {"from": "<backup>", "confirm": "<active>"},
    ),
    "wiki clone": row(
        "post",
        "/wikis/<active>/clone/",
        (401, 202, 404, 202, 403),
        {"from": "<backup>", "new_id": "alphacopy"},
    ),
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
    def closed(self):
        wiki_id = self.factory.active(self.alice, "epsilon").id
        services.wiki_close(actor=self.users["ops"], wiki_id=wiki_id, reason="Frozen")
        run_pending()
        return wiki_id

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

    @cached_property
    def wiki_history(self):
        """Alice gave her wiki a value: there is something to remove, diff and roll back."""
        return config.config_set(
            actor=self.alice, layer="wiki", target=self.active, setting="wgRightsText", value="CC0"
        ).pk

    @cached_property
    def default_history(self):
        return config.config_set(
            actor=self.users["ops"], layer="default", setting="wgRCMaxAge", value=7 * 86400
        ).pk

    @cached_property
    def run(self):
        """A backup run of alice's wiki, queued (nothing works it off in these tests)."""
        self.active  # noqa: B018
        ops = self.users["ops"]
        return runs.run_create(actor=ops, kind="backup", selection={"all": True}).pk

    @cached_property
    def halted_run(self):
        runs.run_halt(actor=self.users["ops"], run_id=self.run)
        return self.run

    @cached_property
    def failed_run(self):
        """A finished run whose one wiki failed: its database went missing."""
        wiki = self.factory.active(self.alice, "zeta")
        database_driver().database_path(wiki_resources(wiki)).unlink()
        run = runs.run_create(
            actor=self.users["ops"], kind="backup", selection={"wiki_ids": ["zeta"]}
        )
        run_runs()
        return run.pk

    @cached_property
    def backup(self):
        """A backup of alice's wiki, by a run worked off: the id restores and clones name."""
        self.active  # noqa: B018
        run = runs.run_create(actor=self.users["ops"], kind="backup", selection={"all": True})
        run_runs()
        return run.pk

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
    for thing in endpoint.needs:
        getattr(world, thing)
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
    """An operation in the schema without a row in the table fails here: each is matched to
    the URL pattern that answers it, so a row for one route does not cover another."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    covered = {
        (endpoint.method, _route(API + PLACEHOLDER.sub("x", endpoint.path)))
        for endpoint in MATRIX.values()
    }
    documented = {
        f"{method.upper()} {path}": (method, _route(example_path(path, operation)))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    missing = [name for name, operation in documented.items() if operation not in covered]
    assert len(documented) >= 45  # the schema really was walked
    assert not missing, f"endpoints missing from the permission matrix: {missing}"


def _route(path: str) -> str:
    """The name of the URL pattern that answers `path` (the query string aside)."""
    return resolve(path.partition("?")[0]).view_name
