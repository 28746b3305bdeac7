"""The provider's webhook events: a hint to look, recorded once per event id.

A webhook is never the fact (issue 13): whoever holds the signing secret could sign
a `charge.succeeded` for an order nobody paid. An event only says *which* payment or
refund to look at; the provider's own record, asked through the one provider client,
decides:

- charge.succeeded / charge.failed: the payment its `reference` names, if still
  pending or unknown, is settled by `payment_resolve_by_lookup` (the provider's
  charges for that order: a succeeded charge of the right amount captures, only
  failed ones fail it, none changes nothing);
- refund.succeeded / refund.failed: the pending refunds of the payment that holds
  the refund's charge are sent again with their own fixed keys (`refund_send`): the
  provider replays its answer for each key, and that answer settles the refund.

The look runs first, outside any transaction (provider calls never hold a row
lock); each settling service is idempotent and commits on its own. Then the inbox
row (unique event id) is written with the outcome, so a later delivery of the same
event is a duplicate and changes nothing. When the provider cannot be asked, nothing
is recorded and the view answers 503: the provider delivers the event again later
(and the sweepers look anyway).
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

from ..choices import RefundStatus, WebhookOutcome
from ..models import Payment, ProviderWebhookEvent, Refund
from ._common import UNSETTLED_STATES
from .provider_flows import payment_resolve_by_lookup, refund_send

logger = logging.getLogger(__name__)

# Events that bring news about a payment or a refund; anything else is acknowledged and logged.
CHARGE_EVENT_TYPES = frozenset({"charge.succeeded", "charge.failed"})
REFUND_EVENT_TYPES = frozenset({"refund.succeeded", "refund.failed"})
EVENT_ID_MAX_LENGTH = 255
EVENT_TYPE_MAX_LENGTH = 64
_ID_MAX_LENGTH = 255


@dataclass(frozen=True)
class WebhookReceipt:
    event_id: str
    event_type: str
    duplicate: bool
    # applied, not_confirmed, no_payment, ignored, rejected
    outcome: str


class ProviderUnreachable(ConcordError):
    """The provider could not be asked about the event: nothing is recorded, the
    provider delivers it again."""

    code = "provider_unavailable"
    http_status = 503


def _claim(event_id: str, event_type: str, payload: dict[str, Any], outcome: str, note: str) -> bool:
    """Insert the inbox row with its outcome; False if the event was recorded before
    (its delivery is counted).

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
        processed_at=now,
        outcome=outcome,
        note=note[:2000],
    )
    if insert_unless_exists(event, conflict=["event_id"]):
        return True
    ProviderWebhookEvent.objects.filter(event_id=event_id).update(
        deliveries=F("deliveries") + 1, last_seen_at=now
    )
    return False


def _object(payload: dict[str, Any]) -> dict[str, Any] | None:
    obj = (payload.get("data") or {}).get("object")
    return obj if isinstance(obj, dict) else None


def _text(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if isinstance(value, str) and 1 <= len(value) <= _ID_MAX_LENGTH:
        return value
    return None


def _look(event_type: str, payload: dict[str, Any]) -> tuple[str, str]:
    """(outcome, note) of one new event, after asking the provider. Raises
    ProviderUnreachable when the provider cannot be asked."""
    if event_type in CHARGE_EVENT_TYPES:
        return _look_at_charge(event_type, payload)
    if event_type in REFUND_EVENT_TYPES:
        return _look_at_refund(event_type, payload)
    return WebhookOutcome.IGNORED, f"event type {event_type!r} brings no payment news"


def _look_at_charge(event_type: str, payload: dict[str, Any]) -> tuple[str, str]:
    charge = _object(payload)
    if charge is None:
        return WebhookOutcome.REJECTED, "data.object is not a charge"
    reference = _text(charge, "reference")
    if reference is None or _text(charge, "id") is None:
        return WebhookOutcome.REJECTED, "provider_event_invalid: the event's charge is malformed"
    if not (reference.isascii() and reference.isdigit() and len(reference) <= 18):
        return WebhookOutcome.NO_PAYMENT, f"no payment for reference {reference!r}"
    payment = Payment.objects.filter(order_id=int(reference)).first()
    if payment is None:
        return WebhookOutcome.NO_PAYMENT, f"no payment for reference {reference!r}"
    if payment.status in UNSETTLED_STATES:
        try:
            resolved = payment_resolve_by_lookup(payment_id=payment.pk)
        except ConcordError as exc:
            if exc.code == "provider_unavailable":
                raise ProviderUnreachable(exc.message) from None
            return WebhookOutcome.REJECTED, f"{exc.code}: {exc.message}"
        status = resolved.status
    else:
        status = payment.status
    if status in UNSETTLED_STATES:
        return (
            WebhookOutcome.NOT_CONFIRMED,
            f"{event_type} {charge.get('id')!r}: the provider's records show no settled charge for "
            f"order {reference}; payment {payment.pk} stays {status}",
        )
    return WebhookOutcome.APPLIED, f"payment {payment.pk} is {status} (from the provider's records)"


def _look_at_refund(event_type: str, payload: dict[str, Any]) -> tuple[str, str]:
    refund = _object(payload)
    if refund is None:
        return WebhookOutcome.REJECTED, "data.object is not a refund"
    charge_id = _text(refund, "charge")
    if charge_id is None:
        return WebhookOutcome.REJECTED, "provider_event_invalid: the event's refund names no charge"
    payment = Payment.objects.filter(provider_charge_id=charge_id).first()
    if payment is None:
        return WebhookOutcome.NO_PAYMENT, f"no payment holds charge {charge_id!r}"
    pending = list(
        Refund.objects.filter(payment=payment, status=RefundStatus.PENDING)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    settled = []
    for refund_id in pending:
        sent = refund_send(refund_id=refund_id, reason=f"provider webhook {event_type}")
        assert sent.refund is not None
        if sent.refund.status == RefundStatus.PENDING:
            if sent.outcome in ("transient", "unknown"):
                raise ProviderUnreachable(
                    f"refund {refund_id} could not be settled now ({sent.outcome}: {sent.error})"
                )
            continue
        settled.append(f"refund {refund_id} {sent.refund.status}")
    if not pending:
        return WebhookOutcome.APPLIED, f"payment {payment.pk} has no pending refund"
    return WebhookOutcome.APPLIED, (
        "; ".join(settled) or "no refund settled"
    ) + " (from the provider's answers)"


def webhook_event_receive(*, event_id: str, event_type: str, payload: dict[str, Any]) -> WebhookReceipt:
    """Look at what a verified provider event names and record the event, once per
    event id. Not one transaction: the look asks the provider first (see above)."""
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= EVENT_ID_MAX_LENGTH:
        raise ConcordError("The event has no usable id.", code="invalid_event", details={"field": "id"})
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= EVENT_TYPE_MAX_LENGTH:
        raise ConcordError("The event has no usable type.", code="invalid_event", details={"field": "type"})
    if not isinstance(payload, dict):
        raise ConcordError("The event is not an object.", code="invalid_event")

    duplicate = WebhookReceipt(
        event_id=event_id, event_type=event_type, duplicate=True, outcome=WebhookOutcome.DUPLICATE
    )
    if ProviderWebhookEvent.objects.filter(event_id=event_id).exists():
        _claim(event_id, event_type, payload, "", "")  # counts the delivery
        logger.info("webhook %s (%s) delivered again; already processed", event_id, event_type)
        return duplicate

    outcome, note = _look(event_type, payload)
    with transaction.atomic():
        if not _claim(event_id, event_type, payload, outcome, note):
            logger.info("webhook %s (%s) delivered concurrently; processed once", event_id, event_type)
            return duplicate
    log = logger.warning if outcome in (WebhookOutcome.REJECTED, WebhookOutcome.NO_PAYMENT) else logger.info
    log("webhook %s (%s): %s - %s", event_id, event_type, outcome, note)
    return WebhookReceipt(event_id=event_id, event_type=event_type, duplicate=False, outcome=outcome)
