"""Idempotency-Key on POST: a retried request gets the first answer and starts nothing.

The record is reserved, the request handled and its response stored in one transaction, so
a concurrent request with the same key waits on the record's unique index and then replays
the stored answer instead of starting a second operation.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from farm.api.exceptions import IdempotencyInProgress, IdempotencyKeyReused, InvalidIdempotencyKey
from farm.models import IdempotencyRecord
from farm.transactions import atomic_with_retries

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


def _existing(user, key: str, *, locking: bool) -> IdempotencyRecord | None:
    # A locking read waits for a concurrent transaction holding the key and sees its result;
    # a plain one takes no gap locks, which two users' inserts would deadlock on.
    records = IdempotencyRecord.objects.filter(user=user, key=key)
    record = (records.select_for_update() if locking else records).first()
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
    # The caller's row, exclusively and first: the record's insert below takes a shared lock
    # on it (its foreign key) and the quota check an exclusive one, and two requests each
    # holding the shared lock while waiting for the exclusive one would deadlock. Requests
    # of one user with a key are serialized here; other users' are not touched.
    get_user_model().objects.select_for_update().filter(pk=request.user.pk).first()
    record = _existing(request.user, key, locking=False)
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
        # Another request with this key committed first: answer as its repeat. If its record
        # is not readable (yet, or any more), the client is told to come back shortly.
        record = _existing(request.user, key, locking=True)
        if record is not None:
            _answer_repeat(record, request_fingerprint)
        raise IdempotencyInProgress() from None


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
        try:
            body = request.body  # read once: a repeated attempt parses the same bytes
        except RequestDataTooBig:
            # DRF reads the body again, meets the same limit and answers 413.
            return super().dispatch(request, *args, **kwargs)

        def attempt():
            # Django's request reads its body from this stream; each attempt starts over.
            request._stream = io.BytesIO(body)
            self._idempotency_record = None
            return super(IdempotentPostMixin, self).dispatch(request, *args, **kwargs)

        # The whole request is one transaction, repeated if the registry broke a deadlock.
        return atomic_with_retries(attempt)

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
