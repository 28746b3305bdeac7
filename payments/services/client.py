"""The one provider client, and the record of every call made with it.

Every write to the provider (charge, refund) and every lookup goes through
provider_flows, whose `*_call` half uses `provider_client()` and whose `*_record`
half writes a ProviderAttempt with what came back — whatever the outcome — so a
payment's timeline shows each call, including those that failed. Other apps
(reconciliation's sync) get the same client from `provider_client()` for reads and
send their refunds through provider_flows, never through a client of their own.
"""

from __future__ import annotations

import threading

from django.conf import settings

from core.errors import ConcordError, NotFound
from core.money import to_minor_units
from core.sql import insert_rows
from core.transactions import joins_caller

from ..choices import ProviderAttemptKind, ProviderAttemptOutcome
from ..dto import PaymentDTO, ProviderAttemptDTO
from ..models import Payment, ProviderAttempt, Refund
from ..provider import ProviderCharge, ProviderClient
from ._common import MAX_KEY_LENGTH, payment_not_found

_clients = threading.local()


class _KeptClient(ProviderClient):
    """A per-thread client that outlives the `with` block using it."""

    def __exit__(self, *exc_info: object) -> None:
        pass


def provider_client(timeout: float | None = None) -> ProviderClient:
    """A client from settings, its timeouts clamped to `timeout` (a saga step's
    remaining time), so the call gives up before the step's lease runs out.

    Clients with the settings' own timeouts (the usual case) are kept per thread:
    building one costs ~20 ms (TLS context) and a kept one reuses its keep-alive
    connection. Use it as a context manager; closing a kept client is a no-op."""
    connect = float(settings.PSP_CONNECT_TIMEOUT)
    read = float(settings.PSP_READ_TIMEOUT)
    if timeout is not None and timeout < read:
        read = max(0.1, timeout)
        connect = min(connect, read)
        return ProviderClient(
            base_url=settings.PSP_BASE_URL,
            api_key=settings.PSP_API_KEY,
            connect_timeout=connect,
            read_timeout=read,
        )
    key = (settings.PSP_BASE_URL, settings.PSP_API_KEY, connect, read)
    cache = getattr(_clients, "by_key", None)
    if cache is None:
        cache = _clients.by_key = {}
    client = cache.get(key)
    if client is None:
        client = _KeptClient(base_url=key[0], api_key=key[1], connect_timeout=connect, read_timeout=read)
        cache[key] = client
    return client


def charge_matches(payment: Payment | PaymentDTO, charge: ProviderCharge) -> bool:
    """Invariant 3: a charge is ours only if amount and currency are the payment's."""
    return (
        charge.reference == str(payment.order_id)
        and charge.currency.upper() == payment.currency.upper()
        and charge.amount == to_minor_units(payment.amount, payment.currency)
    )


@joins_caller
def provider_attempt_record(
    *,
    payment_id: int | None,
    kind: str,
    idempotency_key: str,
    outcome: str,
    provider_object_id: str = "",
    http_status: int | None = None,
    error: str = "",
    duration_ms: int | None = None,
    refund_id: int | None = None,
    charge_id: str = "",
    attempt_id: str = "",
) -> ProviderAttemptDTO:
    """Record one call to the provider, whatever its outcome. Record it in a
    transaction that commits (a saga checkpoint, or its own), never in one that may
    roll back, so the timeline keeps the attempts that failed. `payment_id` None only
    for a refund of a charge no payment knows (`charge_id` names it)."""
    _check_attempt(kind, outcome)
    if payment_id is None:
        if kind != ProviderAttemptKind.REFUND or not charge_id:
            raise ConcordError(
                "Only the refund of a named charge may be recorded without a payment.",
                code="attempt_payment_required",
            )
    elif not Payment.objects.filter(pk=payment_id).exists():
        raise payment_not_found(payment_id)
    if refund_id is not None and (
        payment_id is None or not Refund.objects.filter(pk=refund_id, payment_id=payment_id).exists()
    ):
        raise NotFound(f"Refund {refund_id} of payment {payment_id} does not exist.", code="refund_not_found")
    # Checked above, before any write: the caller's transaction is joined, no savepoint.
    return _attempt_insert(
        payment_id=payment_id,
        refund_id=refund_id,
        charge_id=charge_id,
        kind=kind,
        idempotency_key=idempotency_key,
        outcome=outcome,
        provider_object_id=provider_object_id,
        http_status=http_status,
        error=error,
        duration_ms=duration_ms,
        attempt_id=attempt_id,
    )


def charge_attempt_record_locked(
    payment: Payment,
    *,
    idempotency_key: str,
    outcome: str,
    provider_object_id: str = "",
    http_status: int | None = None,
    error: str = "",
    duration_ms: int | None = None,
    charge_id: str = "",
    attempt_id: str = "",
) -> ProviderAttemptDTO:
    """provider_attempt_record of a charge, for a payment the caller has locked in
    its transaction (payment_charge_record): the row is there, so it is not
    looked up again. The caller's transaction is the one that must commit."""
    _check_attempt(ProviderAttemptKind.CHARGE, outcome)
    return _attempt_insert(
        payment_id=payment.pk,
        refund_id=None,
        charge_id=charge_id,
        kind=ProviderAttemptKind.CHARGE,
        idempotency_key=idempotency_key,
        outcome=outcome,
        provider_object_id=provider_object_id,
        http_status=http_status,
        error=error,
        duration_ms=duration_ms,
        attempt_id=attempt_id,
    )


def _check_attempt(kind: str, outcome: str) -> None:
    if kind not in ProviderAttemptKind.values:
        raise ConcordError(f"Unknown attempt kind {kind!r}.", code="attempt_kind_invalid")
    if outcome not in ProviderAttemptOutcome.values:
        raise ConcordError(f"Unknown attempt outcome {outcome!r}.", code="attempt_outcome_invalid")


def _attempt_insert(
    *,
    payment_id: int | None,
    refund_id: int | None,
    charge_id: str,
    kind: str,
    idempotency_key: str,
    outcome: str,
    provider_object_id: str,
    http_status: int | None,
    error: str,
    duration_ms: int | None,
    attempt_id: str,
) -> ProviderAttemptDTO:
    attempt = ProviderAttempt(
        payment_id=payment_id,
        refund_id=refund_id,
        charge_id=(charge_id or "")[:MAX_KEY_LENGTH],
        kind=kind,
        idempotency_key=idempotency_key[:MAX_KEY_LENGTH],
        outcome=outcome,
        provider_object_id=(provider_object_id or "")[:MAX_KEY_LENGTH],
        http_status=http_status,
        error=error or "",
        duration_ms=duration_ms,
        attempt_id=(attempt_id or "")[:40],
    )
    insert_rows([attempt])  # one per charge: built once, not compiled by the ORM each time
    return ProviderAttemptDTO.from_model(attempt)
