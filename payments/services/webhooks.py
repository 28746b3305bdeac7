"""The provider's webhook events: recorded once per event id, applied once.

`webhook_event_receive` is one transaction: the inbox row (unique event id) and
the payment change the event brings commit together. A duplicate delivery finds
the row and changes nothing; a concurrent duplicate waits on the unique index
until the first commits (then it is a duplicate) or rolls back (then it is the
first). If applying fails unexpectedly, nothing is recorded, the view answers
5xx and the provider delivers the event again later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.errors import ConcordError
from core.sql import insert_unless_exists

from ..choices import WebhookOutcome
from ..dto import PaymentDTO
from ..models import Payment, ProviderWebhookEvent
from ..provider import ProviderCharge, ProviderChargeStatus
from ._common import UNSETTLED_STATES, lock_payment
from .client import charge_matches
from .payments import payment_capture, payment_fail

logger = logging.getLogger(__name__)

# Events that bring news about a payment; anything else is acknowledged and logged.
CHARGE_EVENT_TYPES = frozenset({"charge.succeeded", "charge.failed"})
EVENT_ID_MAX_LENGTH = 255
EVENT_TYPE_MAX_LENGTH = 64


@dataclass(frozen=True)
class WebhookReceipt:
    event_id: str
    event_type: str
    duplicate: bool
    # applied (a payment was resolved or already matched), no_payment, ignored, rejected
    outcome: str


def _claim(event_id: str, event_type: str, payload: dict[str, Any]) -> bool:
    """Insert the inbox row; False if the event was seen before (its delivery is counted).

    INSERT … ON CONFLICT (event_id) DO NOTHING (core.sql): a concurrent duplicate's
    INSERT waits on the unique index for the first delivery's transaction, then does
    nothing: it is a duplicate. No IntegrityError, so no savepoint is needed."""
    now = timezone.now()
    event = ProviderWebhookEvent(
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        first_seen_at=now,
        last_seen_at=now,
        deliveries=1,
    )
    if insert_unless_exists(event, conflict=["event_id"]):
        return True
    ProviderWebhookEvent.objects.filter(event_id=event_id).update(
        deliveries=F("deliveries") + 1, last_seen_at=now
    )
    return False


def _apply(event_type: str, payload: dict[str, Any]) -> tuple[str, str]:
    """(outcome, note) of one new event."""
    if event_type not in CHARGE_EVENT_TYPES:
        return WebhookOutcome.IGNORED, f"event type {event_type!r} brings no payment news"
    charge = (payload.get("data") or {}).get("object")
    if not isinstance(charge, dict):
        return WebhookOutcome.REJECTED, "data.object is not a charge"
    try:
        with transaction.atomic():
            payment = payment_apply_provider_event(event_type=event_type, charge=charge)
    except ConcordError as exc:
        # The provider signed it, so retrying will not make it valid: keep it
        # visible in the inbox instead of having it redelivered for a day.
        return WebhookOutcome.REJECTED, f"{exc.code}: {exc.message}"
    if payment is None:
        return WebhookOutcome.NO_PAYMENT, f"no payment for reference {charge.get('reference')!r}"
    return WebhookOutcome.APPLIED, f"payment {payment.id} is {payment.status}"


def payment_apply_provider_event(*, event_type: str, charge: dict) -> PaymentDTO | None:
    """Provider news about a charge (webhook charge.succeeded / charge.failed).

    Resolves a payment that is still pending or unknown — the provider's answer
    may have been lost — exactly as a successful retry would: capture or fail.
    Idempotent (repeated or reordered events change nothing once the payment is
    settled) and conservative: an event about a charge that does not match the
    payment (other amount/currency, or a second charge for a captured payment)
    changes nothing; reconciliation reports such charges. Returns the payment,
    or None when no payment has this reference. Other event types are ignored."""
    if event_type not in CHARGE_EVENT_TYPES:
        return None
    try:
        parsed = ProviderCharge(
            id=str(charge["id"]),
            status=str(charge["status"]),
            failure_code=charge.get("failure_code"),
            amount=int(charge["amount"]),
            currency=str(charge["currency"]),
            reference=str(charge["reference"]),
            created=int(charge.get("created") or 0),
        )
    except (KeyError, TypeError, ValueError):
        raise ConcordError("The event's charge is malformed.", code="provider_event_invalid") from None
    if not parsed.reference.isdigit():
        return None
    payment = Payment.objects.filter(order_id=int(parsed.reference)).first()
    if payment is None:
        return None
    if payment.status not in UNSETTLED_STATES or not charge_matches(payment, parsed):
        return PaymentDTO.from_model(payment)
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if locked.status not in UNSETTLED_STATES:
            return PaymentDTO.from_model(locked)
        if event_type == "charge.succeeded" and parsed.status == ProviderChargeStatus.SUCCEEDED:
            return payment_capture(
                payment_id=payment.pk,
                provider_charge_id=parsed.id,
                reason=f"webhook {event_type} {parsed.id}",
            )
        if event_type == "charge.failed" and parsed.status == ProviderChargeStatus.FAILED:
            return payment_fail(
                payment_id=payment.pk,
                failure_code=(parsed.failure_code or "declined")[:64],
                reason=f"webhook {event_type} {parsed.id}",
            )
    return PaymentDTO.from_model(payment)


@transaction.atomic
def webhook_event_receive(*, event_id: str, event_type: str, payload: dict[str, Any]) -> WebhookReceipt:
    """Record a verified provider event and apply it, exactly once per event id."""
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= EVENT_ID_MAX_LENGTH:
        raise ConcordError("The event has no usable id.", code="invalid_event", details={"field": "id"})
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= EVENT_TYPE_MAX_LENGTH:
        raise ConcordError("The event has no usable type.", code="invalid_event", details={"field": "type"})
    if not isinstance(payload, dict):
        raise ConcordError("The event is not an object.", code="invalid_event")

    if not _claim(event_id, event_type, payload):
        logger.info("webhook %s (%s) delivered again; already processed", event_id, event_type)
        return WebhookReceipt(
            event_id=event_id, event_type=event_type, duplicate=True, outcome=WebhookOutcome.DUPLICATE
        )

    outcome, note = _apply(event_type, payload)
    ProviderWebhookEvent.objects.filter(event_id=event_id).update(
        processed_at=timezone.now(), outcome=outcome, note=note[:2000]
    )
    log = logger.warning if outcome in (WebhookOutcome.REJECTED, WebhookOutcome.NO_PAYMENT) else logger.info
    log("webhook %s (%s): %s - %s", event_id, event_type, outcome, note)
    return WebhookReceipt(event_id=event_id, event_type=event_type, duplicate=False, outcome=outcome)
