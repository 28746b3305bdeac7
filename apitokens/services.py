"""Issue, rotate and revoke API tokens. The plaintext leaves these functions once, as
the return value of an issue or a rotation; only its digest is written."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from .models import ApiToken

log = logging.getLogger(__name__)

# Digest -> (monotonic deadline, token with its user) of tokens found active, kept by
# apitokens.authentication for API_TOKEN_CACHE_SECONDS. Revocation and rotation
# clear it in their own process when they commit (see authentication.py for the
# bound in the others).
token_cache: dict[str, tuple[float, ApiToken]] = {}

TOKEN_BYTES = 20  # 160 bits, written as 40 hex characters (the shape DRF's tokens had)
PREFIX_LENGTH = 8


def token_cache_clear() -> None:
    token_cache.clear()


def _token_cache_clear_now_and_on_commit() -> None:
    """Now, so this thread's next request looks the token up; and again after the
    commit, since another thread may have cached the old row in between."""
    token_cache_clear()
    transaction.on_commit(token_cache_clear)


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_issue(*, user: User, key: str | None = None) -> str:
    """A new active token for `user`; returns the plaintext, which is not stored.
    `key` is for the local demo only (seed_demo derives a stable one); everything else
    gets a random one."""
    key = key or secrets.token_hex(TOKEN_BYTES)
    ApiToken.objects.create(user=user, prefix=key[:PREFIX_LENGTH], digest=token_digest(key))
    log.info("api token %s… issued for %s", key[:PREFIX_LENGTH], user)
    return key


@transaction.atomic
def api_token_rotate(*, user: User, grace: timedelta = timedelta(0)) -> str:
    """Issue a new token and retire the user's active ones: at once, or after `grace`
    so a shop can deploy the new token before the old one stops working."""
    now = timezone.now()
    active = ApiToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True)
    if grace > timedelta(0):
        until = now + grace
        active.filter(expires_at__isnull=True).update(expires_at=until)
        active.filter(expires_at__gt=until).update(expires_at=until)
    else:
        active.update(revoked_at=now)
    _token_cache_clear_now_and_on_commit()
    return api_token_issue(user=user)


@transaction.atomic
def api_token_revoke(*, user: User, prefix: str | None = None) -> int:
    """Revoke the user's active tokens (only the one starting with `prefix` if given);
    returns how many were revoked."""
    tokens = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
    if prefix:
        tokens = tokens.filter(prefix=prefix[:PREFIX_LENGTH])
    count = tokens.update(revoked_at=timezone.now())
    _token_cache_clear_now_and_on_commit()
    log.info("%d api token(s) of %s revoked", count, user)
    return count
