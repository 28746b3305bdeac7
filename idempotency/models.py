"""idempotency owns these tables (DESIGN §1)."""

from django.db import models

from idempotency.choices import IdempotencyState


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one API client, and the response it got.

    `state` is a plain field, not an FSM with audit rows: the record is a technical
    cache of a response, written with set-based SQL in the request's own transaction;
    an audit row per API call would double the writes and tell nobody anything.
    """

    client_id = models.BigIntegerField(help_text="The API client's user id.")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and canonical JSON body.")
    request_method = models.CharField(max_length=10)
    request_path = models.CharField(max_length=2048)
    state = models.CharField(
        max_length=16, choices=IdempotencyState.choices, default=IdempotencyState.IN_FLIGHT
    )
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client_id", "key"], name="idempotency_unique_client_key"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.key} ({self.state})"
