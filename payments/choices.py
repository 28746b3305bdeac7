"""The states and kinds of the payments app (DESIGN §2)."""

from django.db import models


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CAPTURED = "captured", "Captured"
    FAILED = "failed", "Failed"
    # The provider did not answer (timeout, connection lost): the customer may or may
    # not have been charged. Resolved by retrying with the same key or a lookup.
    UNKNOWN = "unknown", "Unknown"
    REFUNDED = "refunded", "Refunded"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ProviderAttemptKind(models.TextChoices):
    CHARGE = "charge", "Charge"
    REFUND = "refund", "Refund"
    LOOKUP = "lookup", "Lookup"


class ProviderAttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    DECLINED = "declined", "Declined"
    # Retry later: 5xx, 429, connection refused before the request was sent.
    TRANSIENT = "transient", "Transient"
    # The request may have reached the provider but no answer came back.
    UNKNOWN = "unknown", "Unknown"


class WebhookOutcome(models.TextChoices):
    """What a provider event did (ProviderWebhookEvent.outcome, the webhook's answer)."""

    APPLIED = "applied", "Applied to a payment (or it matched already)"
    NOT_CONFIRMED = "not_confirmed", "The provider's own records do not confirm it: nothing changed"
    NO_PAYMENT = "no_payment", "No payment for its reference"
    IGNORED = "ignored", "An event type that brings no payment news"
    REJECTED = "rejected", "Signed but unusable"
    DUPLICATE = "duplicate", "Delivered before"


class LedgerTransactionKind(models.TextChoices):
    CAPTURE = "capture", "Capture"
    REFUND = "refund", "Refund"
    ADJUSTMENT = "adjustment", "Adjustment"


class LedgerAccountCode(models.TextChoices):
    # Money the provider holds for us (captured, not yet paid out), net of refunds.
    PROVIDER_CLEARING = "provider_clearing", "Provider clearing"
    # What we owe customers for their orders until the goods are delivered or refunded.
    CUSTOMER_FUNDS = "customer_funds", "Customer funds"
    # Earned money; used by adjustments (e.g. recognising revenue, write-offs).
    REVENUE = "revenue", "Revenue"
