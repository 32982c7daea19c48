"""JSON only, with a size limit DRF does not enforce on its own."""

from __future__ import annotations

import io

from django.conf import settings
from rest_framework.parsers import JSONParser

from farm.api.exceptions import PayloadTooLarge


class LimitedJSONParser(JSONParser):
    """DRF reads the body from the stream, bypassing Django's DATA_UPLOAD_MAX_MEMORY_SIZE
    check, so the limit is applied here: never more than limit + 1 bytes are read."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and stream is not None:
            body = stream.read(limit + 1)
            if len(body) > limit:
                raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
            stream = io.BytesIO(body)
        return super().parse(stream, media_type, parser_context)
