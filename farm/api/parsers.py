"""The API's JSON parser: DRF's, with a limit on nesting as well as on size.

Python's json module recurses once per nesting level, so a body such as `[[[[...]]]]` of a
few KB would end in a RecursionError (a 500) instead of a 400. No request of this API nests
deeper than a config value of a map of maps, so the limit is low and checked on the bytes
before anything is decoded.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from farm.api.exceptions import PayloadTooLarge

MAX_NESTING = 32
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


def nesting_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when the JSON text `body` opens more than `limit` arrays or objects at once
    (brackets inside strings do not count)."""
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSERS:
            depth -= 1
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # Django's own limit (DATA_UPLOAD_MAX_MEMORY_SIZE) answers 413 before this reads
        # more than it allows; the read here is bounded by it too.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1 if limit is not None else -1)
        if limit is not None and len(body) > limit:
            raise PayloadTooLarge()
        if nesting_depth_exceeds(body, MAX_NESTING):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_NESTING} levels")
        return super().parse(_Replay(body), media_type, parser_context)


class _Replay:
    """The bytes already read, as the stream DRF's parser reads from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def read(self, *args) -> bytes:
        body, self._body = self._body, b""
        return body
