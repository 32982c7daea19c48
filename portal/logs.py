"""What every log line carries besides its message: the request id in the web process, the
operation, wiki and step in a worker (docs/logging.md has the schema).

The values live in context variables: a request's thread (or task) sees only its own, and
`ContextFilter` copies the ones that are set onto each record, so the JSON formatter writes
them as fields and the text formatter appends them.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.signals import request_finished

# The fields, in the order the text format shows them.
CONTEXT_FIELDS = ("request_id", "operation_id", "operation_kind", "wiki_id", "step")
_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"log_{name}", default=None) for name in CONTEXT_FIELDS
}

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only when it cannot forge a log line or flood one: letters, digits
# and . _ : - (UUIDs, nginx's $request_id, most tracing ids), at most 128 characters.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

F = TypeVar("F", bound=Callable[..., Any])


def bind(**values: object) -> None:
    """Set context fields for the rest of the current scope (see `scoped`)."""
    for name, value in values.items():
        _context[name].set(None if value is None else str(value))


def current(name: str) -> str | None:
    return _context[name].get()


def scoped(function: F) -> F:
    """Run `function` in a copy of the current context: what it binds is gone when it
    returns, so a worker process never lends one operation's ids to the next task."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return contextvars.copy_context().run(function, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ContextFilter(logging.Filter):
    """Copy the context fields that are set onto the record (it never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _context.items():
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """The development format: the classic line, then the context as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        )
        if not context:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the context
        return f"{first} [{context}]{newline}{rest}"


def request_id_from(header: str | None) -> str:
    if header and SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def forget_request_id(**kwargs) -> None:
    _context["request_id"].set(None)


class RequestIdMiddleware:
    """Take the request id from X-Request-ID when it is sane, else make one; bind it for
    the request's log lines and audit events, and return it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response
        # Kept bound past this middleware: Django logs a 4xx or 5xx answer after the whole
        # chain returned, and the server its access line. The server closing the response
        # (request_finished) comes after both; the next request binds its own id anyway.
        request_finished.connect(forget_request_id, dispatch_uid="portal.logs.request_id")

    def __call__(self, request):
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        bind(request_id=request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response
