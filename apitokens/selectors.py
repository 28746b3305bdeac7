"""Reads of API tokens (by plaintext key, hashed here; digests never leave the app)."""

from __future__ import annotations

from django.utils import timezone

from .models import ApiToken
from .services import token_digest


def api_token_status(*, key: str) -> str | None:
    """ "active", "retired" (revoked or expired) or None when no such token was ever issued."""
    token = ApiToken.objects.filter(digest=token_digest(key)).first()
    if token is None:
        return None
    return "active" if token.is_active(timezone.now()) else "retired"
