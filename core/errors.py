"""The one application error type. Services raise it; the DRF exception handler
and the staff pages turn it into the error envelope or a message."""

from __future__ import annotations

from typing import Any


class ConcordError(Exception):
    """A business-rule failure with a stable, documented code."""

    code: str = "error"
    http_status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.details = details or {}


class NotFound(ConcordError):
    code = "not_found"
    http_status = 404


class Conflict(ConcordError):
    """The action is not legal in the object's current state."""

    code = "conflict"
    http_status = 409
