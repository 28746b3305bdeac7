"""API client tokens, stored as SHA-256 digests (docs/security.md, "API tokens").

A token is 160 random bits shown once, when it is issued; the database keeps its
SHA-256 digest (the lookup key) and its first characters (a name for people, not a
secret). A stolen dump or backup therefore holds nothing that authenticates. A fast
hash is right here: slow, salted hashes protect guessable passwords, and a 160-bit
random token cannot be guessed from its digest.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    prefix = models.CharField(max_length=8, help_text="The token's first characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when rotated with a grace period."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "revoked_at"], name="apitoken_user_revoked")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
