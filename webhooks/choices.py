"""The states of webhooks (endpoints and deliveries)."""

from django.db import models


class EndpointStatus(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled after persistent failure"
    DELETED = "deleted", "Deleted by the client"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending (due at next_attempt_at)"
    SUCCEEDED = "succeeded", "Delivered (2xx)"
    FAILED = "failed", "Failed: every attempt of the retry schedule failed"
    CANCELLED = "cancelled", "Cancelled (endpoint deleted)"
