"""Writes of the payments app — the only way other apps change payments' tables or
reach the provider. Split by concern:

- ledger: the double-entry ledger (ledger_post);
- payments: a payment's lifecycle (payment_create, payment_capture, payment_fail, ...);
- refunds: a refund's lifecycle, locally (refund_create, refund_open, refund_succeed, ...);
- client: the one provider client and the record of every call (provider_attempt_record);
- provider_flows: asking the provider, each flow split into a call (HTTP, no
  transaction) and a record (one transaction): charges, lookups, refunds;
- webhooks: the provider's events, a hint to look at the provider's records; recorded once.

Each state change has exactly one service (payment_capture, payment_fail, refund_succeed,
...), the single place where that state changes. A move the state machine does not allow
raises Conflict("illegal_transition"); a repeated call that already took effect changes
nothing.
"""

from ..provider import (
    Outcome,
    ProviderCharge,
    ProviderClient,
    ProviderError,
    ProviderRefund,
    ProviderUnavailable,
)
from .client import provider_attempt_record, provider_client
from .ledger import ledger_post
from .payments import (
    payment_capture,
    payment_create,
    payment_fail,
    payment_mark_unknown,
    payment_mark_unknown_if_pending,
)
from .provider_flows import (
    CARD_DECLINE_CODES,
    ChargeCall,
    ChargeOutcome,
    ChargeRefundOutcome,
    RefundCall,
    RefundOutcome,
    ResumedRefund,
    charge_refund,
    payment_charge,
    payment_charge_call,
    payment_charge_record,
    payment_refund_through_provider,
    payment_resolve_by_lookup,
    refund_call,
    refund_record,
    refund_send,
    refunds_resume,
)
from .refunds import refund_create, refund_fail, refund_open, refund_succeed
from .webhooks import ProviderUnreachable, WebhookReceipt, webhook_event_receive

__all__ = [
    "CARD_DECLINE_CODES",
    "ChargeCall",
    "ChargeOutcome",
    "ChargeRefundOutcome",
    "Outcome",
    "ProviderCharge",
    "ProviderClient",
    "ProviderError",
    "ProviderRefund",
    "ProviderUnavailable",
    "ProviderUnreachable",
    "RefundCall",
    "RefundOutcome",
    "ResumedRefund",
    "WebhookReceipt",
    "charge_refund",
    "ledger_post",
    "payment_capture",
    "payment_charge",
    "payment_charge_call",
    "payment_charge_record",
    "payment_create",
    "payment_fail",
    "payment_mark_unknown",
    "payment_mark_unknown_if_pending",
    "payment_refund_through_provider",
    "payment_resolve_by_lookup",
    "provider_attempt_record",
    "provider_client",
    "refund_call",
    "refund_create",
    "refund_fail",
    "refund_open",
    "refund_record",
    "refund_send",
    "refund_succeed",
    "refunds_resume",
    "webhook_event_receive",
]
