"""Request parsing for the API: JSON only, with a body-size cap.

DRF reads the body straight from the WSGI stream, bypassing Django's
DATA_UPLOAD_MAX_MEMORY_SIZE, so the cap is enforced here, before anything is read.
The declared Content-Length is trustworthy for this: Django's LimitedStream never
reads past it, so a body longer than declared is cut, not parsed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.api_exceptions import RequestTooLarge

DEFAULT_MAX_BODY_BYTES = 64 * 1024


def max_body_bytes() -> int:
    return int(getattr(settings, "API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


class LimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        if request is not None:
            meta = request.META
            try:
                length = int(meta.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = max_body_bytes()
            if length > limit:
                raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json recurses per nesting level: "[[[[..." within the size cap
            # would otherwise be a 500.
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
