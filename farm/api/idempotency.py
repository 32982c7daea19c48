"""Idempotency-Key on POST: a retried request gets the first answer and starts nothing.

The record is reserved, the request handled and its response stored in one transaction, so
a concurrent request with the same key waits on the record's unique index and then replays
the stored answer instead of starting a second operation.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from farm.api.exceptions import IdempotencyKeyReused, InvalidIdempotencyKey
from farm.models import IdempotencyRecord

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$", re.ASCII)
# Not stored: a retry after these may well succeed, and must be allowed to.
UNSTORED_STATUSES = (429,)


class Replay(Exception):
    """Raised to answer a repeated request with the stored response."""

    def __init__(self, record: IdempotencyRecord):
        super().__init__(record.key)
        self.record = record

    def response(self) -> Response:
        headers = {"Idempotent-Replayed": "true"}
        if self.record.location:
            headers["Location"] = self.record.location
        return Response(self.record.response_body, status=self.record.status_code, headers=headers)


def fingerprint(request) -> str:
    """What makes two requests "the same": method, path and the body as parsed JSON."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _key(request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not KEY_RE.fullmatch(key):
        raise InvalidIdempotencyKey()
    return key


def _existing(user, key: str) -> IdempotencyRecord | None:
    # A locking read waits for a concurrent transaction holding the key and sees its result.
    record = IdempotencyRecord.objects.select_for_update().filter(user=user, key=key).first()
    expired_before = timezone.now() - timedelta(seconds=settings.FARM_API_IDEMPOTENCY_TTL_SECONDS)
    if record is not None and record.created_at < expired_before:
        record.delete()
        return None
    return record


def _answer_repeat(record: IdempotencyRecord, request_fingerprint: str) -> None:
    if record.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused()
    raise Replay(record)


def lookup(request) -> tuple[str, str] | None:
    """Raise Replay or IdempotencyKeyReused for a repeated key; else (key, fingerprint)."""
    key = _key(request)
    if key is None:
        return None
    request_fingerprint = fingerprint(request)
    record = _existing(request.user, key)
    if record is not None:
        _answer_repeat(record, request_fingerprint)
    return key, request_fingerprint


def reserve(request, key: str, request_fingerprint: str) -> IdempotencyRecord:
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                user=request.user, key=key, fingerprint=request_fingerprint
            )
    except IntegrityError:
        # Another request with this key committed first: answer as its repeat.
        record = _existing(request.user, key)
        if record is not None:
            _answer_repeat(record, request_fingerprint)
        raise


def store(record: IdempotencyRecord, response: Response, redact: tuple[str, ...]) -> None:
    if response.status_code in UNSTORED_STATUSES or response.status_code >= 500:
        record.delete()
        return
    data = response.data
    if isinstance(data, dict) and redact:
        data = {name: value for name, value in data.items() if name not in redact}
    # Rendered and parsed back: the stored body is exactly what JSON clients received.
    record.response_body = json.loads(JSONRenderer().render(data)) if data is not None else None
    record.status_code = response.status_code
    record.location = response.get("Location", "")
    record.save(update_fields=["response_body", "status_code", "location"])


class IdempotentPostMixin:
    """For viewsets: every POST honours Idempotency-Key.

    `idempotency_redact` names response fields never stored (a token's secret is shown once;
    a replay answers without it).
    """

    idempotency_redact: tuple[str, ...] = ()

    def dispatch(self, request, *args, **kwargs):
        self._idempotency_record = None
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)
        with transaction.atomic():
            return super().dispatch(request, *args, **kwargs)

    def check_throttles(self, request):
        # Before the throttles: a replay starts nothing, so it does not count against them.
        found = lookup(request) if request.method == "POST" else None
        super().check_throttles(request)
        if found is not None:
            self._idempotency_record = reserve(request, *found)

    def handle_exception(self, exc):
        if isinstance(exc, Replay):
            return exc.response()
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self._idempotency_record is not None:
            store(self._idempotency_record, response, self.idempotency_redact)
        return response
