"""Structured logs: a request's lines carry its id (taken from X-Request-ID when sane, and
returned), a worker's lines carry the operation, wiki and step, production writes one JSON
object a line and development the readable line (docs/logging.md)."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import re

import pytest
from django.conf import settings
from django.test import Client

from farm.models import AuditEvent
from portal import logs
from provisioning import services
from provisioning.models import OperationState
from tests.api.conftest import token_client
from tests.provisioning.helpers import run_pending
from tests.provisioning.test_faults import inject_fault

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_output():
    """Configure LOGGING as settings.py does, in the given format, into a buffer."""
    buffers: list[io.StringIO] = []

    def configure(log_format: str) -> io.StringIO:
        config = copy.deepcopy(settings.LOGGING)
        config["handlers"]["console"]["formatter"] = log_format
        buffer = io.StringIO()
        config["handlers"]["console"]["stream"] = buffer
        logging.config.dictConfig(config)
        buffers.append(buffer)
        return buffer

    yield configure
    logging.config.dictConfig(settings.LOGGING)


def json_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("3f2a9c1e-6b1d-4e55-9b0e-2f9c8d7a6b5c", True),
        ("req.42:edge-7_x", True),
        ("has space", False),
        ("forged\nline", False),
        ("x" * 129, False),
        ("", False),
    ],
)
def test_the_request_id_is_the_callers_when_sane(sent, kept):
    response = Client().get("/api/v1/", HTTP_X_REQUEST_ID=sent)
    returned = response["X-Request-ID"]
    if kept:
        assert returned == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", returned)


def test_every_request_gets_an_id_even_without_the_header():
    first = Client().get("/login/")["X-Request-ID"]
    second = Client().get("/login/")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


def test_a_requests_lines_are_json_with_its_id(log_output):
    output = log_output("json")
    Client().get("/api/v1/no-such-thing/", HTTP_X_REQUEST_ID="req-404-check")
    lines = json_lines(output)
    # Django logs the 404 after the whole middleware chain returned: the id is still there.
    not_found = [line for line in lines if line["logger"] == "django.request"]
    assert not_found, lines
    line = not_found[0]
    assert line["request_id"] == "req-404-check"
    assert line["level"] == "WARNING"
    assert "Not Found" in line["message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", line["time"])
    # Once the response is closed, the id no longer colours other lines of the thread.
    logging.getLogger("farm.test").info("after the request")
    assert "request_id" not in json_lines(output)[-1]


def test_development_lines_are_readable_text_with_the_context(log_output):
    output = log_output("text")
    Client().get("/api/v1/no-such-thing/", HTTP_X_REQUEST_ID="req-text")
    line = next(text for text in output.getvalue().splitlines() if "django.request" in text)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING django.request Not Found", line)
    assert line.endswith("[request_id=req-text]")


def test_an_exception_keeps_its_traceback_in_both_formats(log_output):
    for log_format in ("json", "text"):
        output = log_output(log_format)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("farm.test").exception("it failed")
        text = output.getvalue()
        if log_format == "json":
            assert "RuntimeError: boom" in json_lines(output)[-1]["exc_info"]
        else:
            assert "Traceback" in text and "RuntimeError: boom" in text


def test_audit_events_carry_the_request_id(ops_user):
    client, _ = token_client(ops_user, "ops")
    response = client.post(
        "/api/v1/tags/", {"name": "traced"}, format="json", HTTP_X_REQUEST_ID="req-audit-1"
    )
    assert response.status_code == 201, response.content
    assert AuditEvent.objects.get(action="tag.create").request_id == "req-audit-1"


def test_a_workers_lines_carry_operation_wiki_and_step(
    log_output, farm_drivers, ops_user, monkeypatch
):
    from provisioning.steps import STEP_FUNCTIONS

    output = log_output("json")
    real_step = STEP_FUNCTIONS["create"]["create_database"]

    def logging_step(ctx):
        logging.getLogger("provisioning.steps").info("creating the database")
        return real_step(ctx)

    monkeypatch.setitem(STEP_FUNCTIONS["create"], "create_database", logging_step)
    inject_fault(monkeypatch, "create", "create_storage", after_work=False)
    operation = services.wiki_create(
        actor=ops_user, wiki_id="logged", family="default", sitename="L"
    )
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    logging.getLogger("farm.test").info("after the operation")

    lines = json_lines(output)
    step_line = next(line for line in lines if line["message"] == "creating the database")
    failure = next(line for line in lines if line["logger"] == "provisioning.engine")
    expected = {"operation_id": str(operation.pk), "operation_kind": "create", "wiki_id": "logged"}
    assert step_line.items() >= {**expected, "step": "create_database"}.items()
    assert failure["level"] == "ERROR"
    assert failure.items() >= {**expected, "step": "create_storage"}.items()
    # The worker's next task starts clean: nothing of this operation is left bound.
    assert not set(logs.CONTEXT_FIELDS) & set(lines[-1])
