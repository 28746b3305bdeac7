"""`Authorization: Token <key>` against stored digests, with a short per-process cache.

DRF's TokenAuthentication parses the header and words the 401s; only the lookup is
replaced: one indexed SELECT of the digest joined to its user.

Why a cache: that SELECT ran in autocommit before the view, so every accepted order
cost two transactions (the lookup's and the order's commit) and a round trip. A
token that was found active is now remembered in the process for
API_TOKEN_CACHE_SECONDS (default 5 s; 0 turns the cache off) under its digest, so a
busy client's requests make no token query at all: POST orders/ is one transaction.

What the cache may not weaken (docs/security.md, "API tokens"):
- Revocation and rotation commit in the database first, then clear the cache of
  the process that ran them (on commit). Any other web process stops accepting the
  token at most API_TOKEN_CACHE_SECONDS later, when its entry expires: that is the
  bound, and the same bound applies to a deactivated or deleted user.
- `expires_at` (a rotation's grace period) and the user's `is_active` are checked
  on every request against the cached rows, exactly as against fresh ones.
- Only tokens found active are cached; an unknown, revoked or expired token is
  looked up every time (and the cache never answers for a digest it did not see).
- At most MAX_ENTRIES tokens are remembered; past that the cache starts over.
"""

from __future__ import annotations

import copy
import time

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .models import ApiToken
from .services import token_cache, token_digest

MAX_ENTRIES = 10_000


def _cache_seconds() -> float:
    return float(getattr(settings, "API_TOKEN_CACHE_SECONDS", 0))


def _lookup(digest: str) -> ApiToken:
    try:
        return ApiToken.objects.select_related("user").get(digest=digest)
    except ApiToken.DoesNotExist:
        raise exceptions.AuthenticationFailed("Invalid token.") from None


class DigestTokenAuthentication(TokenAuthentication):
    model = ApiToken

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        digest = token_digest(key)
        seconds = _cache_seconds()
        now = time.monotonic()
        cached = token_cache.get(digest) if seconds > 0 else None
        if cached is not None and cached[0] > now:
            token = cached[1]
        else:
            token = _lookup(digest)
            if seconds > 0 and token.is_active(timezone.now()) and token.user.is_active:
                if len(token_cache) >= MAX_ENTRIES:
                    token_cache.clear()
                token_cache[digest] = (now + seconds, token)
        if not token.is_active(timezone.now()):
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        # Copies: a request (or a view) may set attributes on request.user; the cached
        # rows are shared by the process's threads and must stay as loaded.
        token = copy.copy(token)
        user = copy.copy(token.user)
        token.user = user
        return (user, token)
