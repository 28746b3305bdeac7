"""webhooks owns these tables (DESIGN §1): what API clients (shops) are told.

- ClientEvent: the events a client may see (GET /api/v1/events/), written by the
  `webhooks` outbox consumer in the relay's transaction, in the shape shops read.
- WebhookEndpoint: a URL a client registered, with the event types it wants and the
  secret its deliveries are signed with (Standard Webhooks).
- WebhookDelivery: one row per (endpoint, event): its attempts, when the next one is
  due (retry timing lives here, not in Celery ETAs) and how the last one ended.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .choices import DeliveryStatus, EndpointStatus


class ClientEvent(models.Model):
    # The outbox event's id: the `id` shops see and the `webhook-id` of its deliveries.
    event_id = models.UUIDField(unique=True)
    client_id = models.BigIntegerField()
    type = models.CharField(max_length=100)
    # The outbox sequence (commit order): the order of the list and of deliveries.
    sequence = models.BigIntegerField()
    # Deliveries of one order go out in sequence order (per endpoint).
    order_id = models.BigIntegerField()
    data = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["client_id", "-sequence"], name="webhooks_event_client_recent"),
            models.Index(fields=["order_id", "sequence"], name="webhooks_event_order"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} (client {self.client_id})"


class WebhookEndpoint(models.Model):
    client_id = models.BigIntegerField()
    url = models.URLField(max_length=2048)
    event_types = models.JSONField(help_text='Event types to deliver, or ["*"] for all.')
    description = models.CharField(max_length=255, blank=True, default="")
    secret = models.CharField(max_length=100, help_text="whsec_…: shown to the client once, at creation.")
    status = models.CharField(max_length=16, choices=EndpointStatus.choices, default=EndpointStatus.ENABLED)
    disabled_reason = models.TextField(blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # First failed attempt since the last success (None while it delivers fine).
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["client_id", "status"], name="webhooks_endpoint_client")]

    def __str__(self) -> str:
        return f"endpoint {self.pk} {self.url} ({self.status})"

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event = models.ForeignKey(ClientEvent, on_delete=models.CASCADE, related_name="deliveries")
    # Copied from the event: the claim query orders and blocks on them without a join.
    order_id = models.BigIntegerField()
    sequence = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A sender holds the delivery until then (a sender killed mid-send loses it, the
    # next claim after this time sends again: at least once, same webhook-id).
    leased_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhooks_one_delivery_per_event"),
        ]
        indexes = [
            # The sender's work: pending deliveries by due time.
            models.Index(
                fields=["next_attempt_at"], name="webhooks_delivery_due", condition=Q(status="pending")
            ),
            # "Is an earlier delivery of this order still pending at this endpoint?"
            models.Index(
                fields=["endpoint", "order_id", "sequence"],
                name="webhooks_delivery_order",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["order_id", "sequence"], name="webhooks_delivery_by_order"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of {self.event_id} to {self.endpoint_id} ({self.status})"
