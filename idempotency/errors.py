"""Errors of the Idempotency-Key protocol (DESIGN §4); the API maps them to the envelope."""

from core.errors import ConcordError


class IdempotencyKeyRequired(ConcordError):
    code = "idempotency_key_required"
    http_status = 400


class IdempotencyKeyInvalid(ConcordError):
    code = "idempotency_key_invalid"
    http_status = 400


class IdempotencyKeyReused(ConcordError):
    """Same key, different request (method, path or canonical body)."""

    code = "idempotency_key_reused"
    http_status = 422


class IdempotencyKeyInUse(ConcordError):
    """The first request with this key is still running; retry shortly."""

    code = "idempotency_key_in_use"
    http_status = 409
