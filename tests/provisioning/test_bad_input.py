"""Bad input and wrong actions are refused with a clear message and change nothing."""

from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from farm.errors import (
    InvalidInput,
    NotAllowed,
    NotFound,
    OperationInProgress,
    QuotaExceeded,
    WrongState,
)
from farm.models import AuditEvent, Wiki, WikiState
from farm.validators import LANGUAGE_RE, WIKI_ID_RULE
from provisioning import services
from provisioning.models import Operation, OperationKind, UnarchiveRequest
from provisioning.steps import STEP_FUNCTIONS
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db


def world(root: Path) -> dict:
    """Everything a refused request must leave as it was."""
    return {
        "rows": {
            model.__name__: model.objects.count()
            for model in (Wiki, Operation, UnarchiveRequest, AuditEvent)
        },
        "wikis": list(Wiki.objects.values_list("id", "state", "read_only", "legal_hold")),
        "operations": list(Operation.objects.values_list("pk", "state", "open_for_wiki")),
        "files": sorted(
            str(path.relative_to(root))
            for path in root.rglob("*")
            if path.is_file() and not path.name.startswith("search.sqlite3")
        ),
    }


def refused(root: Path, error_class: type, service, **arguments):
    """Call the service, expect `error_class`, check nothing changed; return the error."""
    before = world(root)
    with pytest.raises(error_class) as caught:
        service(**arguments)
    assert world(root) == before
    return caught.value


def make_wiki(actor, wiki_id: str = "alpha", *, state: str = WikiState.ACTIVE) -> Wiki:
    services.wiki_create(actor=actor, wiki_id=wiki_id, family="default", sitename="Test")
    run_pending()
    if state == WikiState.ARCHIVED:
        services.wiki_archive(actor=actor, wiki_id=wiki_id)
        run_pending()
    wiki = Wiki.objects.get(pk=wiki_id)
    assert wiki.state == state
    return wiki


def create(actor, **overrides):
    arguments = {"wiki_id": "alpha", "family": "default", "sitename": "Alpha"} | overrides
    return lambda: services.wiki_create(actor=actor, **arguments)


def refused_create(root: Path, error_class: type, actor, **overrides):
    error = refused(root, error_class, create(actor, **overrides))
    assert not (root / "databases").exists() and not (root / "storage").exists()
    return error


# --- wiki ids ----------------------------------------------------------------------------

BAD_WIKI_IDS = {
    "uppercase": "Alpha",
    "33-chars": "a" * 33,
    "path": "../x",
    "sql": "a;drop",
    "cyrillic-a": "\u0430lpha",
    "fullwidth": "\uff41\uff4c\uff50\uff48\uff41",
    "empty": "",
    "one-char": "a",
    "leading-digit": "1abc",
    "trailing-newline": "alpha\n",
    "none": None,
    "int": 123,
}


@pytest.mark.parametrize("wiki_id", BAD_WIKI_IDS.values(), ids=BAD_WIKI_IDS.keys())
def test_bad_wiki_id_is_refused(wiki_id, farm_drivers, ops_user, tmp_path):
    error = refused_create(tmp_path, InvalidInput, ops_user, wiki_id=wiki_id)

    assert error.field == "wiki_id" and error.rule == WIKI_ID_RULE
    assert WIKI_ID_RULE in error.message and repr(wiki_id) in error.message


@pytest.mark.parametrize("name", ["www", "api"])
def test_reserved_wiki_id_is_refused(name, farm_drivers, ops_user, tmp_path):
    error = refused_create(tmp_path, InvalidInput, ops_user, wiki_id=name)

    assert error.field == "wiki_id" and error.rule == "not_reserved"
    assert f"{name!r} is reserved" in error.message


def test_taken_wiki_id_is_refused(farm_drivers, ops_user, tmp_path):
    services.wiki_create(actor=ops_user, wiki_id="alpha", family="default", sitename="First")

    error = refused(tmp_path, InvalidInput, create(ops_user))

    assert error.field == "wiki_id" and error.rule == "unique"
    assert "'alpha' is taken" in error.message


def test_wiki_id_of_a_purged_wiki_is_never_reused(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user)
    services.wiki_purge(actor=ops_user, wiki_id="alpha", confirm="alpha")
    run_pending()
    assert Wiki.objects.get(pk="alpha").state == WikiState.PURGED

    error = refused(tmp_path, InvalidInput, create(ops_user))

    assert error.field == "wiki_id" and error.rule == "unique_forever"
    assert "purged" in error.message


# --- other create fields -----------------------------------------------------------------


def test_unknown_family_is_refused(farm_drivers, ops_user, tmp_path):
    error = refused_create(tmp_path, InvalidInput, ops_user, family="nosuchfamily")

    assert error.field == "family" and "'nosuchfamily' does not exist" in error.message


def test_unknown_tag_is_refused(farm_drivers, ops_user, tmp_path):
    error = refused_create(tmp_path, InvalidInput, ops_user, tags=["nosuchtag"])

    assert error.field == "tags" and "nosuchtag" in error.message


@pytest.mark.parametrize(
    ("sitename", "rule"),
    [("", "required"), ("   ", "required"), ("x" * 256, "max_length:255"), (None, "type:string")],
    ids=["empty", "blank", "too-long", "none"],
)
def test_bad_sitename_is_refused(sitename, rule, farm_drivers, ops_user, tmp_path):
    error = refused_create(tmp_path, InvalidInput, ops_user, sitename=sitename)

    assert error.field == "sitename" and error.rule == rule
    assert error.message.startswith("sitename must")


@pytest.mark.parametrize("language", ["EN", "english", "e", "en_US", ""])
def test_bad_language_is_refused(language, farm_drivers, ops_user, tmp_path):
    error = refused_create(tmp_path, InvalidInput, ops_user, language=language)

    assert error.field == "language" and error.rule == LANGUAGE_RE.pattern
    assert repr(language) in error.message


def test_quota_binds_wiki_admins_but_not_ops(
    farm_drivers, admin_user_a, ops_user, settings, tmp_path
):
    settings.FARM_WIKI_QUOTA = 1
    services.wiki_create(actor=admin_user_a, wiki_id="first", family="default", sitename="1")

    error = refused(tmp_path, QuotaExceeded, create(admin_user_a, wiki_id="second"))

    assert error.rule == "quota:1" and "the quota is 1" in error.message
    for wiki_id in ("opsone", "opstwo"):
        services.wiki_create(actor=ops_user, wiki_id=wiki_id, family="default", sitename="O")
    assert Wiki.objects.filter(created_by=ops_user).count() == 2


# --- actions in the wrong state ----------------------------------------------------------


def test_archiving_an_archived_wiki_names_its_state(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user, state=WikiState.ARCHIVED)

    error = refused(tmp_path, WrongState, services.wiki_archive, actor=ops_user, wiki_id="alpha")

    assert error.current_state == WikiState.ARCHIVED
    assert "it is archived" in error.message and "archive needs active" in error.message


def test_archiving_a_wiki_still_being_created_is_refused(farm_drivers, ops_user, tmp_path):
    services.wiki_create(actor=ops_user, wiki_id="alpha", family="default", sitename="A")

    # Its create operation is still open; that is what the refusal names.
    error = refused(
        tmp_path, OperationInProgress, services.wiki_archive, actor=ops_user, wiki_id="alpha"
    )

    assert error.field == "wiki_id"
    assert "open create operation" in error.message and "(pending)" in error.message


def test_purging_an_active_wiki_needs_its_id_as_confirmation(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user)

    error = refused(tmp_path, InvalidInput, services.wiki_purge, actor=ops_user, wiki_id="alpha")

    assert error.field == "confirm" and error.rule == "equals_wiki_id"
    assert "type its id as confirmation" in error.message


def test_purging_with_a_wrong_confirmation_is_refused(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user, state=WikiState.ARCHIVED)

    error = refused(
        tmp_path,
        InvalidInput,
        services.wiki_purge,
        actor=ops_user,
        wiki_id="alpha",
        confirm="alpah",
    )

    assert error.field == "confirm" and "'alpah' does not match" in error.message


def test_purging_a_wiki_under_legal_hold_is_refused(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user, state=WikiState.ARCHIVED)
    Wiki.objects.filter(pk="alpha").update(legal_hold=True)

    error = refused(
        tmp_path, WrongState, services.wiki_purge, actor=ops_user, wiki_id="alpha", confirm="alpha"
    )

    assert error.rule == "legal_hold" and "legal hold" in error.message


def test_unarchive_request_of_an_active_wiki_is_refused(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user)

    error = refused(
        tmp_path,
        WrongState,
        services.unarchive_request,
        actor=ops_user,
        wiki_id="alpha",
        reason="why not",
    )

    assert error.current_state == WikiState.ACTIVE and "it is active" in error.message


def test_approving_an_approved_request_is_refused(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user, state=WikiState.ARCHIVED)
    request = services.unarchive_request(actor=ops_user, wiki_id="alpha", reason="needed")
    services.unarchive_approve(actor=ops_user, request_id=request.pk)

    error = refused(
        tmp_path, WrongState, services.unarchive_approve, actor=ops_user, request_id=request.pk
    )

    assert error.current_state == "approved" and "already approved" in error.message


def test_second_operation_while_one_is_pending_is_refused(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user)
    archive = services.wiki_archive(actor=ops_user, wiki_id="alpha")

    error = refused(
        tmp_path,
        OperationInProgress,
        services.wiki_purge,
        actor=ops_user,
        wiki_id="alpha",
        confirm="alpha",
    )

    assert f"open archive operation {archive.pk} (pending)" in error.message


def test_second_pending_unarchive_request_is_refused(farm_drivers, ops_user, tmp_path):
    make_wiki(ops_user, state=WikiState.ARCHIVED)
    services.unarchive_request(actor=ops_user, wiki_id="alpha", reason="needed")

    error = refused(
        tmp_path,
        OperationInProgress,
        services.unarchive_request,
        actor=ops_user,
        wiki_id="alpha",
        reason="needed twice",
    )

    assert error.field == "wiki_id" and "already has a pending unarchive request" in error.message


def test_retrying_an_operation_that_has_not_failed_is_refused(farm_drivers, ops_user, tmp_path):
    operation = services.wiki_create(
        actor=ops_user, wiki_id="alpha", family="default", sitename="A"
    )

    error = refused(
        tmp_path, WrongState, services.operation_retry, actor=ops_user, operation_id=operation.pk
    )

    assert error.current_state == "pending" and "only a failed one can be retried" in error.message


# --- permissions -------------------------------------------------------------------------


def test_wiki_admin_cannot_see_or_archive_another_admins_wiki(
    farm_drivers, admin_user_a, admin_user_b, tmp_path
):
    make_wiki(admin_user_a)

    error = refused(tmp_path, NotFound, services.wiki_archive, actor=admin_user_b, wiki_id="alpha")
    assert error.field == "wiki_id" and "'alpha' not found" in error.message
    error = refused(
        tmp_path,
        NotFound,
        services.unarchive_request,
        actor=admin_user_b,
        wiki_id="alpha",
        reason="mine now",
    )
    assert "'alpha' not found" in error.message
    assert not Wiki.objects.for_user(admin_user_b).exists()


def test_wiki_admin_cannot_purge_even_their_own_wiki(farm_drivers, admin_user_a, tmp_path):
    make_wiki(admin_user_a, state=WikiState.ARCHIVED)

    error = refused(
        tmp_path,
        NotAllowed,
        services.wiki_purge,
        actor=admin_user_a,
        wiki_id="alpha",
        confirm="alpha",
    )

    assert "only ops may purge" in error.message


def test_wiki_admin_cannot_approve_an_unarchive(farm_drivers, admin_user_a, tmp_path):
    make_wiki(admin_user_a, state=WikiState.ARCHIVED)
    request = services.unarchive_request(actor=admin_user_a, wiki_id="alpha", reason="needed")

    error = refused(
        tmp_path, NotAllowed, services.unarchive_approve, actor=admin_user_a, request_id=request.pk
    )

    assert "only ops may decide" in error.message


def test_auditor_cannot_create(farm_drivers, auditor_user, tmp_path):
    error = refused_create(tmp_path, NotAllowed, auditor_user)

    assert "only wiki admins and ops may create" in error.message


def test_auditor_cannot_retry_even_an_operation_without_a_wiki(
    farm_drivers, ops_user, auditor_user, tmp_path, monkeypatch
):
    """An abandon whose wiki row is gone is visible to auditors, but only to read."""
    create_operation = services.wiki_create(
        actor=ops_user, wiki_id="alpha", family="default", sitename="A"
    )
    monkeypatch.setitem(STEP_FUNCTIONS[OperationKind.CREATE], "activate", fail_step)
    run_pending()
    free_wiki_id = STEP_FUNCTIONS[OperationKind.ABANDON]["free_wiki_id"]
    monkeypatch.setitem(
        STEP_FUNCTIONS[OperationKind.ABANDON],
        "free_wiki_id",
        lambda ctx: fail_step(ctx, free_wiki_id(ctx)),
    )
    abandon = services.operation_abandon(actor=ops_user, operation_id=create_operation.pk)
    run_pending()
    abandon.refresh_from_db()
    assert abandon.wiki is None and abandon.failed_step == "free_wiki_id"

    error = refused(
        tmp_path, NotAllowed, services.operation_retry, actor=auditor_user, operation_id=abandon.pk
    )

    assert f"only ops may retry operation {abandon.pk}" in error.message


def fail_step(ctx, _result=None):
    raise RuntimeError(f"{ctx.step['name']} failed")


def test_two_person_rule_stops_approving_ones_own_request(
    farm_drivers, ops_user, settings, tmp_path
):
    settings.FARM_UNARCHIVE_TWO_PERSON_RULE = True
    make_wiki(ops_user, state=WikiState.ARCHIVED)
    request = services.unarchive_request(actor=ops_user, wiki_id="alpha", reason="needed")

    error = refused(
        tmp_path, NotAllowed, services.unarchive_approve, actor=ops_user, request_id=request.pk
    )

    assert error.rule == "two_person" and "two-person rule" in error.message


# --- the database itself -----------------------------------------------------------------


def test_database_enforces_one_open_operation_per_wiki(farm_drivers, ops_user):
    services.wiki_create(actor=ops_user, wiki_id="alpha", family="default", sitename="A")
    wiki = Wiki.objects.get(pk="alpha")

    with pytest.raises(IntegrityError), transaction.atomic():
        Operation.objects.create(
            wiki=wiki, wiki_ref="alpha", kind=OperationKind.ARCHIVE, open_for_wiki="alpha"
        )
    assert Operation.objects.filter(wiki_ref="alpha").count() == 1
