"""The OpenAPI schema: the committed docs/openapi.yaml must match the code, and the live
API must honour its schema (schemathesis: no 5xx, responses as documented)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.specs.openapi import checks

from tests.api.conftest import API, token_client

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_SCHEMA = ROOT / "docs" / "openapi.yaml"


def test_committed_schema_matches_the_code():
    # `manage.py spectacular` without --file writes to stdout. A fresh process without
    # OIDC: the committed schema describes the embedded default (OIDC only adds a scheme).
    env = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_")}
    generated = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert generated == COMMITTED_SCHEMA.read_text(), (
        "docs/openapi.yaml is out of date: run "
        "`python manage.py spectacular --validate --file docs/openapi.yaml` and commit it"
    )


# Left out, and why:
# - positive_data_acceptance: a schema-valid body can still break a rule the schema cannot
#   express (the id is taken, the wiki is in the wrong state); those are correct 4xx.
# - ignored_auth: checked without the fuzzer by the permission matrix (401 for everything).
EXCLUDED_CHECKS = [checks.positive_data_acceptance, checks.ignored_auth]
EXAMPLES_PER_OPERATION = 10


@pytest.fixture
def keep_test_connection():
    """Django's WSGI handler closes the database connection after each request, which would
    close the test's transaction; its own test client disconnects the same signals."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield
    for signal in signals:
        signal.connect(close_old_connections)


@pytest.mark.slow
def test_api_honours_its_schema(
    farm_drivers, ops_user, admin_user_a, wiki_factory, settings, keep_test_connection
):
    """schemathesis' pytest plugin trips over this pytest version (it rewrites node ids), so
    the operations are walked here, each fuzzed by hypothesis through the WSGI app."""
    settings.FARM_API_CREATE_RATE = ""
    settings.ALLOWED_HOSTS = ["*"]
    wiki_factory.active(admin_user_a, "alpha")
    wiki_factory.archived(admin_user_a, "beta")
    _, raw = token_client(ops_user, "ops")
    schema = schemathesis.openapi.from_wsgi(API + "/schema/", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    calls = sum(_fuzz(operation, {"Authorization": f"Token {raw}"}) for operation in operations)
    assert calls >= len(operations) * 2  # the fuzzer really ran


def _fuzz(operation, headers) -> int:
    calls = 0

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def check(case):
        nonlocal calls
        calls += 1
        case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)

    check()
    return calls
