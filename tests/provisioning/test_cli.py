"""`manage.py wiki` and `manage.py index_demo_pages`: the lifecycle from the command line."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from farm.models import AuditEvent, Wiki, WikiState
from portal.celery import app as celery_app
from provisioning.drivers import search_driver
from provisioning.models import Operation, OperationKind, OperationState
from provisioning.steps import STEP_FUNCTIONS, wiki_resources
from tests.provisioning.helpers import run_pending


def wiki(*arguments: str, actor: str = "opsuser") -> str:
    out = io.StringIO()
    call_command("wiki", f"--actor={actor}", *arguments, stdout=out)
    return out.getvalue()


def index_demo_pages(*arguments: str) -> str:
    out = io.StringIO()
    call_command("index_demo_pages", *arguments, stdout=out)
    return out.getvalue()


def wiki_documents(wiki_id: str) -> int:
    return search_driver().inspect(wiki_resources(Wiki.objects.get(pk=wiki_id))).counts["wikipage"]


def registry_rows() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in (Wiki, Operation, AuditEvent)}


@pytest.mark.django_db
def test_lifecycle_through_the_cli(farm_drivers, ops_user, admin_user_a):
    out = wiki("create", "alpha", "--sitename", "Alpha wiki", "--owner", "alice")
    assert re.fullmatch(r"create operation [0-9a-f-]{36} for alpha: pending\n", out)
    run_pending()
    status = wiki("status", "alpha")
    assert "alpha: active, family default, database wiki_alpha, storage wikis/alpha/" in status
    assert "done     activate" in status
    assert list(Wiki.objects.get(pk="alpha").owners.all()) == [admin_user_a]

    assert index_demo_pages("alpha", "--pages", "7") == "indexed 7 documents for alpha\n"
    assert wiki_documents("alpha") == 7

    assert "archive operation" in wiki("archive", "alpha", actor="alice")
    run_pending()
    assert "alpha: archived (read-only)" in wiki("status", "alpha")
    assert wiki_documents("alpha") == 0

    out = wiki("unarchive", "alpha", "--reason", "needed again", actor="alice")
    assert re.fullmatch(r"unarchive request \d+ for alpha: pending\n", out)
    assert "unarchive operation" in wiki("approve", "alpha", "--note", "ok")
    run_pending()
    assert "alpha: active," in wiki("status", "alpha")
    assert wiki_documents("alpha") == 7

    assert "purge operation" in wiki("purge", "alpha", "--confirm", "alpha")
    run_pending()
    status = wiki("status", "alpha")
    assert "alpha: purged, family default" in status and "purge receipt" in status
    assert re.search(r"^alpha +purged +default +Alpha wiki$", wiki("list"), re.MULTILINE)


@pytest.mark.django_db
def test_retry_and_abandon_through_the_cli(farm_drivers, ops_user, monkeypatch):
    real_step = STEP_FUNCTIONS[OperationKind.CREATE]["create_storage"]
    fail = [True]

    def sometimes_failing(ctx):
        if fail[0]:
            raise RuntimeError("storage refused")
        return real_step(ctx)

    monkeypatch.setitem(STEP_FUNCTIONS[OperationKind.CREATE], "create_storage", sometimes_failing)
    wiki("create", "alpha")
    run_pending()
    status = wiki("status", "alpha")
    assert "alpha: provisioning" in status and "create    failed" in status
    assert "failed   create_storage  RuntimeError: storage refused" in status

    fail[0] = False
    assert "create operation" in wiki("retry", "alpha")
    run_pending()
    assert "alpha: active" in wiki("status", "alpha")

    fail[0] = True
    wiki("create", "beta")
    run_pending()
    assert "abandon operation" in wiki("abandon", "beta")
    run_pending()
    assert not Wiki.objects.filter(pk="beta").exists()


REFUSALS = {
    "bad-id": (
        ["create", "Alpha"],
        "invalid: wiki id 'Alpha' breaks the rule ^[a-z][a-z0-9]{1,31}$",
    ),
    "reserved": (["create", "www"], "invalid: wiki id 'www' is reserved"),
    "taken": (["create", "alpha"], "invalid: wiki id 'alpha' is taken"),
    "family": (["create", "beta", "--family", "nope"], "invalid: family 'nope' does not exist"),
    "confirm": (["purge", "alpha"], "invalid: wiki alpha is active: type its id as confirmation"),
    "state": (["unarchive", "alpha", "--reason", "r"], "wrong_state: cannot request unarchive"),
    "no-request": (["approve", "alpha"], "wiki alpha has no pending unarchive request"),
    "no-operation": (["retry", "alpha"], "wiki alpha has no open operation"),
    "unknown-wiki": (["archive", "nope"], "not_found: wiki 'nope' not found"),
    "status": (["status", "nope"], "wiki 'nope' not found"),
}


@pytest.mark.django_db
@pytest.mark.parametrize(("arguments", "message"), REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_input_is_a_command_error_with_the_services_message(
    arguments, message, farm_drivers, ops_user
):
    wiki("create", "alpha")
    run_pending()
    before = registry_rows()

    with pytest.raises(CommandError) as caught:
        wiki(*arguments)

    assert str(caught.value).startswith(message)
    assert registry_rows() == before


@pytest.mark.django_db
def test_cli_refuses_unknown_actors_and_what_roles_forbid(farm_drivers, ops_user, admin_user_a):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        wiki("list", actor="nobody")
    wiki("create", "alpha", "--owner", "alice")
    run_pending()
    with pytest.raises(CommandError, match="^forbidden: only ops may purge wikis$"):
        wiki("purge", "alpha", "--confirm", "alpha", actor="alice")
    with pytest.raises(CommandError, match="unknown owner"):
        wiki("create", "beta", "--owner", "nobody")
    assert Wiki.objects.get(pk="alpha").state == WikiState.ACTIVE


@pytest.mark.django_db
def test_index_demo_pages_refuses_what_it_cannot_index(farm_drivers, ops_user):
    with pytest.raises(CommandError, match="'nope' is not an active wiki"):
        index_demo_pages("nope")
    wiki("create", "alpha")
    with pytest.raises(CommandError, match="'alpha' is not an active wiki"):
        index_demo_pages("alpha")  # still provisioning
    run_pending()
    with pytest.raises(CommandError, match="--pages must be between 1 and 1000000"):
        index_demo_pages("alpha", "--pages", "0")
    assert wiki_documents("alpha") == 0


@pytest.fixture
def tasks_run_inline():
    """Celery runs each task in the caller when it is sent (after the commit)."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_wait_follows_the_operation_to_its_end(farm_drivers, ops_user, tasks_run_inline):
    out = wiki("create", "alpha", "--wait")

    # rich's bar, printed once as it ends when the output is not a terminal.
    assert re.fullmatch(r"create alpha ━+ 5/5 succeeded \d+:\d\d:\d\d", out.splitlines()[-1])
    assert Wiki.objects.get(pk="alpha").state == WikiState.ACTIVE
    assert Operation.objects.get(wiki_ref="alpha").state == OperationState.SUCCEEDED


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_wait_exits_with_the_failure(farm_drivers, ops_user, tasks_run_inline, monkeypatch):
    def refuse(ctx):
        raise RuntimeError("no space left")

    monkeypatch.setitem(STEP_FUNCTIONS[OperationKind.CREATE], "create_storage", refuse)

    with pytest.raises(CommandError) as caught:
        wiki("create", "alpha", "--wait")

    assert str(caught.value).startswith(
        "create of alpha failed at create_storage: RuntimeError: no space left"
    )
