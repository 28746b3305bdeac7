"""`Authorization: Token <key>` against stored digests.

DRF's TokenAuthentication parses the header and words the 401s; only the lookup is
replaced: one indexed SELECT of the digest joined to its user, the same single query
DRF's plaintext lookup cost, so POST orders/ keeps its statement budget
(tests/api_orders/test_query_counts.py)."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .models import ApiToken
from .services import token_digest


class DigestTokenAuthentication(TokenAuthentication):
    model = ApiToken

    def authenticate_credentials(self, key: str):
        try:
            token = ApiToken.objects.select_related("user").get(digest=token_digest(key))
        except ApiToken.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        if not token.is_active(timezone.now()):
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (token.user, token)
