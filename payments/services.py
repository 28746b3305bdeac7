"""Writes of the payments app. Each service is one database transaction: it locks
the rows it changes (always the payment before its refunds), applies an audited
transition, saves, and posts to the ledger where money moves.

Every service is idempotent: repeating a call that already took effect returns the
current state and posts nothing. A move the state machine does not allow raises
Conflict("illegal_transition").

These services change local state only. The ones that talk to the provider over
HTTP (payments/provider.py) call them with the provider's answer.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django_fsm import can_proceed

from core.errors import ConcordError, Conflict, NotFound
from core.money import is_supported_currency, quantize, to_minor_units

from .choices import (
    LedgerAccountCode,
    LedgerTransactionKind,
    PaymentStatus,
    ProviderAttemptKind,
    ProviderAttemptOutcome,
    RefundStatus,
)
from .dto import PaymentDTO, ProviderAttemptDTO, RefundDTO
from .models import LedgerAccount, LedgerEntry, LedgerTransaction, Payment, ProviderAttempt, Refund
from .provider import ChargeResult, Outcome, ProviderCharge, ProviderClient, ProviderError, provider_attempt

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    User = AbstractBaseUser | None
else:
    User = Any

MAX_KEY_LENGTH = 255
_SETTLED_CAPTURE_STATES = {
    PaymentStatus.CAPTURED,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
}


# --- validation and locking helpers ---------------------------------------------


def _require_currency(currency: str) -> None:
    if not isinstance(currency, str) or not is_supported_currency(currency):
        raise ConcordError(
            f"Unsupported currency {currency!r}.", code="currency_unsupported", details={"currency": currency}
        )


def _require_amount(amount: Decimal, currency: str, *, field: str = "amount") -> Decimal:
    """A positive Decimal with no more precision than the currency allows."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise ConcordError(f"{field} must be a Decimal.", code="amount_invalid", details={"field": field})
    amount = Decimal(amount)
    try:
        exact = amount.is_finite() and quantize(amount, currency) == amount
    except InvalidOperation:
        exact = False
    if not exact:
        raise ConcordError(
            f"{field} {amount} is not a valid {currency} amount.",
            code="amount_invalid",
            details={"field": field, "amount": str(amount)},
        )
    if amount <= 0:
        raise ConcordError(
            f"{field} must be positive.",
            code="amount_invalid",
            details={"field": field, "amount": str(amount)},
        )
    return amount


def _require_text(value: str, *, field: str, code: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_LENGTH:
        raise ConcordError(
            f"{field} must be a non-empty string of at most {MAX_KEY_LENGTH} characters.",
            code=code,
            details={"field": field},
        )
    return value


def _lock_payment(payment_id: int) -> Payment:
    try:
        return Payment.objects.select_for_update().get(pk=payment_id)
    except Payment.DoesNotExist:
        raise NotFound(
            f"Payment {payment_id} does not exist.",
            code="payment_not_found",
            details={"payment_id": payment_id},
        ) from None


def _lock_refund_and_payment(refund_id: int) -> tuple[Refund, Payment]:
    """Lock order: payment first, then refund — the same order refund_create uses,
    so concurrent refund services cannot deadlock."""
    payment_id = Refund.objects.filter(pk=refund_id).values_list("payment_id", flat=True).first()
    if payment_id is None:
        raise NotFound(
            f"Refund {refund_id} does not exist.", code="refund_not_found", details={"refund_id": refund_id}
        )
    payment = _lock_payment(payment_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    return refund, payment


def _transition(obj: Payment | Refund, name: str, **kwargs: Any) -> None:
    """Apply a transition or raise Conflict("illegal_transition") — a business error
    the API and staff pages can show, instead of django-fsm's TransitionNotAllowed."""
    method = getattr(obj, name)
    if not can_proceed(method):
        raise Conflict(
            f"{type(obj).__name__} {obj.pk} cannot {name.replace('_', ' ')} from {obj.status}.",
            code="illegal_transition",
            details={"id": obj.pk, "status": obj.status, "transition": name},
        )
    method(**kwargs)


# --- ledger -----------------------------------------------------------------------


@transaction.atomic
def ledger_post(
    *,
    kind: str,
    currency: str,
    entries: list[tuple[str, Decimal]],
    reference: str,
    payment_id: int | None = None,
    refund_id: int | None = None,
    memo: str = "",
) -> int:
    """Post one balanced transaction and return its id.

    `entries` are (account code, signed amount): debit positive, credit negative.
    They must sum to zero — otherwise ConcordError("ledger_unbalanced") and nothing
    is written. `reference` names the business event and is unique: posting the same
    reference again with the same entries returns the first transaction's id (no
    second posting); with different entries it is a Conflict.
    """
    if kind not in LedgerTransactionKind.values:
        raise ConcordError(f"Unknown ledger transaction kind {kind!r}.", code="ledger_kind_invalid")
    _require_currency(currency)
    _require_text(reference, field="reference", code="ledger_reference_invalid")
    if not isinstance(entries, list | tuple) or len(entries) < 2:
        raise ConcordError("A posting needs at least two entries.", code="ledger_entries_invalid")
    wanted: Counter[tuple[str, Decimal]] = Counter()
    for entry in entries:
        try:
            code, amount = entry
        except (TypeError, ValueError):
            raise ConcordError(
                "Each entry is (account code, amount).", code="ledger_entries_invalid"
            ) from None
        if code not in LedgerAccountCode.values:
            raise ConcordError(
                f"Unknown ledger account {code!r}.", code="ledger_account_unknown", details={"account": code}
            )
        if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
            raise ConcordError("Ledger amounts must be Decimal.", code="ledger_entries_invalid")
        amount = Decimal(amount)
        if not amount.is_finite() or amount == 0 or quantize(amount, currency) != amount:
            raise ConcordError(
                f"Ledger amount {amount} is not a non-zero {currency} amount.",
                code="ledger_entries_invalid",
                details={"account": code, "amount": str(amount)},
            )
        wanted[(code, amount)] += 1
    total = sum((amount * n for (_, amount), n in wanted.items()), Decimal(0))
    if total != 0:
        raise ConcordError(
            f"Unbalanced posting: entries sum to {total}, not 0.",
            code="ledger_unbalanced",
            details={"sum": str(total), "reference": reference},
        )

    existing = LedgerTransaction.objects.filter(reference=reference).first()
    if existing is not None:
        posted = Counter(
            (code, amount) for code, amount in existing.entries.values_list("account__code", "amount")
        )
        same = posted == wanted and (
            existing.kind,
            existing.currency,
            existing.payment_id,
            existing.refund_id,
        ) == (kind, currency, payment_id, refund_id)
        if not same:
            raise Conflict(
                f"Ledger reference {reference!r} was already posted with other entries.",
                code="ledger_reference_reused",
                details={"reference": reference, "transaction_id": existing.pk},
            )
        return existing.pk

    accounts = {
        code: LedgerAccount.objects.get_or_create(code=code, currency=currency)[0]
        for code in sorted({code for code, _ in wanted})
    }
    txn = LedgerTransaction.objects.create(
        kind=kind,
        currency=currency,
        reference=reference,
        memo=memo,
        payment_id=payment_id,
        refund_id=refund_id,
    )
    LedgerEntry.objects.bulk_create(
        LedgerEntry(transaction=txn, account=accounts[code], amount=amount, currency=currency)
        for (code, amount), n in wanted.items()
        for _ in range(n)
    )
    return txn.pk


# --- payments ----------------------------------------------------------------------


def _payment_insert_or_get(payment: Payment) -> tuple[Payment, bool]:
    """INSERT … ON CONFLICT (order_id) DO NOTHING RETURNING id: one round trip
    when the order has no payment yet (the common case), and never an
    IntegrityError, so no savepoint is needed to survive a concurrent insert (the
    INSERT waits for it, then does nothing). On conflict the committed row is read."""
    fields = [f for f in Payment._meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(payment, add=True), connection) for f in fields]
    quote = connection.ops.quote_name
    order_id_column = quote(Payment._meta.get_field("order_id").column)
    sql = (
        f"INSERT INTO {quote(Payment._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({order_id_column}) DO NOTHING RETURNING {quote(Payment._meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return Payment.objects.get(order_id=payment.order_id), False
    payment.pk = row[0]
    payment._state.adding = False
    payment._state.db = connection.alias
    return payment, True


def payment_create(*, order_id: int, amount: Decimal, currency: str, payment_method: str) -> PaymentDTO:
    """The one checkout payment of an order, created pending. Idempotent per order:
    a retry returns the same payment; different terms for the same order conflict.

    Called inside order_place's transaction (one commit per accepted order), so
    its block joins the caller's transaction without a savepoint (two round trips
    saved), and it raises only before or after that block: a refusal never
    leaves the caller's transaction marked for rollback."""
    if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id <= 0:
        raise ConcordError("order_id must be a positive integer.", code="order_id_invalid")
    _require_currency(currency)
    amount = _require_amount(amount, currency)
    _require_text(payment_method, field="payment_method", code="payment_method_invalid")
    with transaction.atomic(savepoint=False):
        payment, created = _payment_insert_or_get(
            Payment(order_id=order_id, amount=amount, currency=currency, payment_method=payment_method)
        )
    if not created and (payment.amount, payment.currency, payment.payment_method) != (
        amount,
        currency,
        payment_method,
    ):
        raise Conflict(
            f"Order {order_id} already has a payment with other terms.",
            code="payment_terms_mismatch",
            details={"order_id": order_id, "payment_id": payment.pk},
        )
    return PaymentDTO.from_model(payment)


@transaction.atomic
def payment_capture(*, payment_id: int, provider_charge_id: str, by: User = None, reason: str) -> PaymentDTO:
    """The provider captured the charge: pending|unknown -> captured, and the money
    enters the ledger (Dr provider_clearing / Cr customer_funds)."""
    _require_text(provider_charge_id, field="provider_charge_id", code="provider_charge_id_invalid")
    payment = _lock_payment(payment_id)
    if payment.status in _SETTLED_CAPTURE_STATES:
        if payment.provider_charge_id != provider_charge_id:
            raise Conflict(
                f"Payment {payment_id} was captured by charge {payment.provider_charge_id}.",
                code="provider_charge_id_mismatch",
                details={"payment_id": payment_id, "provider_charge_id": payment.provider_charge_id},
            )
        return PaymentDTO.from_model(payment)  # already captured: no-op
    if Payment.objects.filter(provider_charge_id=provider_charge_id).exclude(pk=payment_id).exists():
        raise Conflict(
            f"Charge {provider_charge_id} already belongs to another payment.",
            code="provider_charge_id_taken",
            details={"provider_charge_id": provider_charge_id},
        )
    _transition(payment, "capture", provider_charge_id=provider_charge_id, by=by, description=reason)
    payment.save()
    ledger_post(
        kind=LedgerTransactionKind.CAPTURE,
        currency=payment.currency,
        entries=[
            (LedgerAccountCode.PROVIDER_CLEARING, payment.amount),
            (LedgerAccountCode.CUSTOMER_FUNDS, -payment.amount),
        ],
        reference=f"payment:{payment.pk}:capture",
        payment_id=payment.pk,
        memo=f"Charge {provider_charge_id} for order {payment.order_id}",
    )
    return PaymentDTO.from_model(payment)


@transaction.atomic
def payment_fail(*, payment_id: int, failure_code: str, by: User = None, reason: str) -> PaymentDTO:
    """The provider declined (or a person established that no charge exists):
    pending|unknown -> failed. No money moved, so nothing is posted."""
    _require_text(failure_code, field="failure_code", code="failure_code_invalid")
    payment = _lock_payment(payment_id)
    if payment.status == PaymentStatus.FAILED:
        return PaymentDTO.from_model(payment)  # already failed: no-op, the first code stands
    _transition(payment, "fail", failure_code=failure_code, by=by, description=reason)
    payment.save()
    return PaymentDTO.from_model(payment)


@transaction.atomic
def payment_mark_unknown(*, payment_id: int, error: str, by: User = None, reason: str) -> PaymentDTO:
    """The provider did not answer: pending -> unknown. Resolved later by a retry with
    the same idempotency key or a lookup (then payment_capture / payment_fail)."""
    if not isinstance(error, str):
        raise ConcordError("error must be a string.", code="error_invalid")
    payment = _lock_payment(payment_id)
    if payment.status == PaymentStatus.UNKNOWN:
        return PaymentDTO.from_model(payment)  # already unknown: no-op
    _transition(payment, "mark_unknown", error=error, by=by, description=reason)
    payment.save()
    return PaymentDTO.from_model(payment)


@transaction.atomic
def provider_attempt_record(
    *,
    payment_id: int,
    kind: str,
    idempotency_key: str,
    outcome: str,
    provider_object_id: str = "",
    http_status: int | None = None,
    error: str = "",
    duration_ms: int | None = None,
    refund_id: int | None = None,
    attempt_id: str = "",
) -> ProviderAttemptDTO:
    """Record one call to the provider, whatever its outcome. Call it in its own
    transaction (not inside one that may roll back), so the timeline keeps the
    attempts that failed."""
    if kind not in ProviderAttemptKind.values:
        raise ConcordError(f"Unknown attempt kind {kind!r}.", code="attempt_kind_invalid")
    if outcome not in ProviderAttemptOutcome.values:
        raise ConcordError(f"Unknown attempt outcome {outcome!r}.", code="attempt_outcome_invalid")
    if not Payment.objects.filter(pk=payment_id).exists():
        raise NotFound(f"Payment {payment_id} does not exist.", code="payment_not_found")
    if refund_id is not None and not Refund.objects.filter(pk=refund_id, payment_id=payment_id).exists():
        raise NotFound(f"Refund {refund_id} of payment {payment_id} does not exist.", code="refund_not_found")
    attempt = ProviderAttempt.objects.create(
        payment_id=payment_id,
        refund_id=refund_id,
        kind=kind,
        idempotency_key=idempotency_key[:MAX_KEY_LENGTH],
        outcome=outcome,
        provider_object_id=(provider_object_id or "")[:MAX_KEY_LENGTH],
        http_status=http_status,
        error=error or "",
        duration_ms=duration_ms,
        attempt_id=(attempt_id or "")[:40],
    )
    return ProviderAttemptDTO.from_model(attempt)


# --- refunds -----------------------------------------------------------------------


def _pending_refund_total(payment: Payment) -> Decimal:
    return sum(
        payment.refunds.filter(status=RefundStatus.PENDING).values_list("amount", flat=True), Decimal(0)
    )


@transaction.atomic
def refund_create(
    *,
    payment_id: int,
    amount: Decimal,
    reason: str,
    by: User = None,
    idempotency_key: str | None = None,
) -> RefundDTO:
    """Request a refund: a pending Refund whose idempotency key the provider call
    reuses on every retry.

    Pending refunds count against the remainder, checked under the payment's row
    lock: two concurrent requests can never together exceed what was captured.
    Without `idempotency_key` each call is a new refund with the deterministic key
    "<payment id>:refund:<n>"; with one (e.g. derived from a saga run and step), a
    repeat returns the first refund and creates nothing.
    """
    payment = _lock_payment(payment_id)
    if idempotency_key is not None:
        _require_text(idempotency_key, field="idempotency_key", code="idempotency_key_invalid")
        existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.payment_id != payment.pk or existing.amount != amount:
                raise Conflict(
                    f"Refund key {idempotency_key!r} was used for another refund.",
                    code="idempotency_key_reused",
                    details={"refund_id": existing.pk},
                )
            return RefundDTO.from_model(existing)
    amount = _require_amount(amount, payment.currency)
    if not isinstance(reason, str):
        raise ConcordError("reason must be a string.", code="reason_invalid")
    if payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED):
        raise Conflict(
            f"Payment {payment_id} is {payment.status}; only captured money can be refunded.",
            code="payment_not_refundable",
            details={"payment_id": payment_id, "status": payment.status},
        )
    remainder = payment.amount - payment.refunded_amount - _pending_refund_total(payment)
    if amount > remainder:
        raise ConcordError(
            f"Refund of {amount} {payment.currency} exceeds the refundable {remainder} {payment.currency}.",
            code="refund_exceeds_captured",
            details={"amount": str(amount), "refundable": str(remainder), "currency": payment.currency},
        )
    if idempotency_key is None:
        # Counted under the payment lock, so the sequence number is race-free.
        idempotency_key = f"{payment.pk}:refund:{payment.refunds.count() + 1}"
    refund = Refund.objects.create(
        payment=payment,
        amount=amount,
        currency=payment.currency,
        idempotency_key=idempotency_key,
        reason=reason,
        requested_by=by if by is not None and by.is_authenticated else None,
    )
    return RefundDTO.from_model(refund)


@transaction.atomic
def refund_succeed(*, refund_id: int, provider_refund_id: str, by: User = None, reason: str) -> RefundDTO:
    """The provider refunded: refund pending -> succeeded, the payment moves to
    partially_refunded or refunded, and the money leaves the ledger
    (Dr customer_funds / Cr provider_clearing)."""
    _require_text(provider_refund_id, field="provider_refund_id", code="provider_refund_id_invalid")
    refund, payment = _lock_refund_and_payment(refund_id)
    if refund.status == RefundStatus.SUCCEEDED:
        if refund.provider_refund_id != provider_refund_id:
            raise Conflict(
                f"Refund {refund_id} succeeded as {refund.provider_refund_id}.",
                code="provider_refund_id_mismatch",
                details={"refund_id": refund_id, "provider_refund_id": refund.provider_refund_id},
            )
        return RefundDTO.from_model(refund)  # already succeeded: no-op
    if Refund.objects.filter(provider_refund_id=provider_refund_id).exclude(pk=refund_id).exists():
        raise Conflict(
            f"Provider refund {provider_refund_id} already belongs to another refund.",
            code="provider_refund_id_taken",
            details={"provider_refund_id": provider_refund_id},
        )
    _transition(refund, "succeed", provider_refund_id=provider_refund_id, by=by, description=reason)
    refunded = payment.refunded_amount + refund.amount
    if refunded > payment.amount:  # cannot happen while refund_create reserves pending amounts
        raise Conflict(
            f"Refund {refund_id} would refund more than payment {payment.pk} captured.",
            code="refund_exceeds_captured",
        )
    payment_transition = "refund_fully" if refunded == payment.amount else "refund_partially"
    _transition(payment, payment_transition, by=by, description=reason)
    payment.refunded_amount = refunded
    refund.save()
    payment.save()
    ledger_post(
        kind=LedgerTransactionKind.REFUND,
        currency=payment.currency,
        entries=[
            (LedgerAccountCode.CUSTOMER_FUNDS, refund.amount),
            (LedgerAccountCode.PROVIDER_CLEARING, -refund.amount),
        ],
        reference=f"refund:{refund.pk}",
        payment_id=payment.pk,
        refund_id=refund.pk,
        memo=f"Refund {provider_refund_id} of charge {payment.provider_charge_id}",
    )
    return RefundDTO.from_model(refund)


@transaction.atomic
def refund_fail(*, refund_id: int, failure_code: str, by: User = None, reason: str) -> RefundDTO:
    """The provider refused the refund: pending -> failed. The amount it reserved
    becomes refundable again; no money moved, nothing is posted."""
    _require_text(failure_code, field="failure_code", code="failure_code_invalid")
    refund, _payment = _lock_refund_and_payment(refund_id)
    if refund.status == RefundStatus.FAILED:
        return RefundDTO.from_model(refund)  # already failed: no-op
    _transition(refund, "fail", failure_code=failure_code, by=by, description=reason)
    refund.save()
    return RefundDTO.from_model(refund)


# --- services that call the provider ---------------------------------------------
#
# These talk to the provider over HTTP, so they are NOT one transaction: each is a
# sequence of short transactions around the call (read, call, record the attempt,
# apply the answer with the services above). No row lock is ever held while the
# provider is being asked: a slow provider must not block the rows other requests
# and the saga checkpoints need. They refuse to run inside a caller's transaction.
#
# Retry safety: the charge of a payment always uses payment.charge_idempotency_key
# and a refund always uses its Refund row's fixed key, so calling any of these again
# (after a timeout, a crash, a lost lease) repeats the same request and the provider
# replays its first answer instead of moving money twice.

# Provider failure codes that mean "the customer's card said no" (the order fails
# with payment_declined); any other permanent refusal is our problem or the
# provider's (invalid request, key reused...) and counts as payment_failed.
CARD_DECLINE_CODES = frozenset(
    {
        "card_declined",
        "insufficient_funds",
        "expired_card",
        "incorrect_cvc",
        "lost_card",
        "stolen_card",
        "do_not_honor",
        "fraudulent",
        "declined",
    }
)


@dataclass(frozen=True)
class ChargeOutcome:
    """What one payment_charge call established. `outcome` is a provider Outcome
    value: succeeded (payment captured), declined (payment failed, permanent),
    transient (retry later, same key), unknown (payment unknown: retry with the
    same key or resolve by lookup)."""

    outcome: str
    payment: PaymentDTO
    failure_code: str = ""
    error: str = ""

    @property
    def card_declined(self) -> bool:
        return self.outcome == Outcome.DECLINED and self.failure_code in CARD_DECLINE_CODES


@dataclass(frozen=True)
class RefundOutcome:
    """What one payment_refund_through_provider call established. `refund` is None
    only when there was nothing left to refund (outcome succeeded, nothing moved)."""

    outcome: str
    payment: PaymentDTO
    refund: RefundDTO | None
    failure_code: str = ""
    error: str = ""


def _refuse_open_transaction(service: str) -> None:
    """An HTTP call inside a transaction would hold its row locks for the whole
    call and, worse, the call's effect would survive the transaction's rollback.
    Django test cases wrap each test in atomic blocks marked _from_testcase; those
    do not count."""
    connection = transaction.get_connection()
    if any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        raise ConcordError(
            f"{service} calls the payment provider and must not run inside a database transaction.",
            code="provider_call_in_transaction",
            http_status=500,
        )


_clients = threading.local()


def _provider_client(timeout: float | None) -> ProviderClient:
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


class _KeptClient(ProviderClient):
    """A per-thread client that outlives the `with` block using it."""

    def __exit__(self, *exc_info: object) -> None:
        pass


def _get_payment(payment_id: int) -> Payment:
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None:
        raise NotFound(
            f"Payment {payment_id} does not exist.",
            code="payment_not_found",
            details={"payment_id": payment_id},
        )
    return payment


def _charge_matches(payment: Payment | PaymentDTO, charge: ProviderCharge) -> bool:
    """Invariant 3: a charge is ours only if amount and currency are the payment's."""
    return (
        charge.reference == str(payment.order_id)
        and charge.currency.upper() == payment.currency.upper()
        and charge.amount == to_minor_units(payment.amount, payment.currency)
    )


@dataclass(frozen=True)
class ChargeCall:
    """What payment_charge_call learnt, for payment_charge_record to write down.
    `result` is None when no call was made (the payment was settled already)."""

    payment_id: int
    idempotency_key: str
    result: ChargeResult | None


def payment_charge_call(*, payment_id: int, timeout: float | None = None) -> ChargeCall:
    """Ask the provider to charge the payment; write nothing. The request always
    carries payment.charge_idempotency_key, so a repeat after a timeout, a crash
    or a lost answer replays the first charge instead of making a second one —
    which is why recording the answer may be left to a later transaction (a saga
    step's checkpoint): if that transaction never commits, the next call learns
    the same answer again. A payment already captured or failed makes no call."""
    _refuse_open_transaction("payment_charge_call")
    payment = _get_payment(payment_id)
    key = payment.charge_idempotency_key
    if payment.status in _SETTLED_CAPTURE_STATES or payment.status == PaymentStatus.FAILED:
        return ChargeCall(payment.pk, key, None)
    with _provider_client(timeout) as client:
        result = client.create_charge(
            amount=to_minor_units(payment.amount, payment.currency),
            currency=payment.currency,
            payment_method=payment.payment_method,
            reference=str(payment.order_id),
            idempotency_key=key,
        )
    return ChargeCall(payment.pk, key, result)


# No savepoint of its own: in a saga checkpoint the step's apply already runs in
# one (a savepoint is two round trips); alone, it is the transaction.
@transaction.atomic(savepoint=False)
def payment_charge_record(*, call: ChargeCall) -> ChargeOutcome:
    """Write down what a charge call established, in one transaction (the
    caller's, e.g. a saga checkpoint): the ProviderAttempt row and succeeded ->
    payment_capture (ledger posted); declined -> payment_fail (permanent);
    unknown -> payment_mark_unknown (retry with the same key, or
    payment_resolve_by_lookup); transient -> the payment stays as it is.
    No call made (result None) -> the payment's settled state.

    Never raises for the provider's answer: if applying it is refused (e.g. the
    charge id already belongs to another payment), the attempt is still
    recorded and the outcome is unknown, so the caller's transaction can commit
    the timeline and a person (and reconciliation) can look."""
    if call.result is None:
        payment = _get_payment(call.payment_id)
        if payment.status in _SETTLED_CAPTURE_STATES:
            return ChargeOutcome(Outcome.SUCCEEDED, PaymentDTO.from_model(payment))
        if payment.status == PaymentStatus.FAILED:
            return ChargeOutcome(
                Outcome.DECLINED, PaymentDTO.from_model(payment), failure_code=payment.failure_code
            )
        return ChargeOutcome(Outcome.TRANSIENT, PaymentDTO.from_model(payment), error="no charge was made")
    result = call.result
    payment = _get_payment(call.payment_id)
    outcome, error = result.outcome, result.error or ""
    failure_code = result.failure_code or ""
    charge = result.charge
    if outcome is Outcome.SUCCEEDED and charge is not None and not _charge_matches(payment, charge):
        # The provider says it charged something else than we asked: never capture
        # it as ours. A person (and reconciliation) must look at it.
        outcome = Outcome.UNKNOWN
        error = f"charge {charge.id} is {charge.amount} {charge.currency} for {charge.reference}, not this payment"
    attempt = {
        "payment_id": payment.pk,
        "kind": ProviderAttemptKind.CHARGE,
        "idempotency_key": call.idempotency_key,
        "outcome": str(outcome),
        "provider_object_id": charge.id if charge is not None else "",
        "http_status": result.http_status,
        "error": error,
        "duration_ms": result.duration_ms,
        "attempt_id": result.attempt_id,
    }
    try:
        with transaction.atomic():  # a savepoint: a refusal undoes only this
            provider_attempt_record(**attempt)
            if outcome is Outcome.SUCCEEDED:
                assert charge is not None
                dto = payment_capture(
                    payment_id=payment.pk,
                    provider_charge_id=charge.id,
                    reason=f"provider charge {charge.id} succeeded",
                )
            elif outcome is Outcome.DECLINED:
                failure_code = failure_code or "declined"
                dto = payment_fail(
                    payment_id=payment.pk,
                    failure_code=failure_code[:64],
                    reason=f"provider refused the charge: {error}",
                )
            elif outcome is Outcome.UNKNOWN:
                dto = _mark_unknown_if_pending(payment.pk, error)
            else:
                dto = PaymentDTO.from_model(payment)
    except ConcordError as exc:
        # The timeline must still show the call.
        error = f"{error + '; ' if error else ''}answer not applied: {exc}"
        provider_attempt_record(**{**attempt, "outcome": str(Outcome.UNKNOWN), "error": error})
        return ChargeOutcome(
            str(Outcome.UNKNOWN), PaymentDTO.from_model(_get_payment(payment.pk)), error=error
        )
    return ChargeOutcome(str(outcome), dto, failure_code=failure_code, error=error)


def payment_charge(*, payment_id: int, timeout: float | None = None) -> ChargeOutcome:
    """Charge through the provider and record the answer in one commit of its own
    (payment_charge_call, then payment_charge_record). For callers outside a saga;
    the checkout saga calls the two halves itself so that recording the answer
    rides in its step's checkpoint."""
    call = payment_charge_call(payment_id=payment_id, timeout=timeout)
    return payment_charge_record(call=call)


def _mark_unknown_if_pending(payment_id: int, error: str) -> PaymentDTO:
    with transaction.atomic():
        payment = _lock_payment(payment_id)
        if payment.status != PaymentStatus.PENDING:
            return PaymentDTO.from_model(payment)
        return payment_mark_unknown(
            payment_id=payment_id, error=error, reason="the provider did not answer the charge request"
        )


def payment_resolve_by_lookup(
    *, payment_id: int, not_found_means_failed: bool = False, timeout: float | None = None
) -> PaymentDTO:
    """Settle a pending or unknown payment from the provider's own records: list
    the charges whose reference is the order id. A succeeded charge with the
    payment's amount and currency -> payment_capture; only failed charges ->
    payment_fail with the provider's code; no charge at all -> payment_fail
    ("not_charged") when `not_found_means_failed` (the caller knows no request
    can still be in flight, e.g. a saga whose lease on the charge step expired),
    else unchanged. Raises ConcordError("provider_unavailable") when the provider
    cannot be asked; nothing changes then."""
    _refuse_open_transaction("payment_resolve_by_lookup")
    payment = _get_payment(payment_id)
    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN):
        return PaymentDTO.from_model(payment)
    started = time.monotonic()
    try:
        # One attempt id for every page of the lookup.
        with provider_attempt() as attempt_id, _provider_client(timeout) as client:
            charges = list(client.iter_charges(reference=str(payment.order_id)))
    except ProviderError as exc:
        provider_attempt_record(
            payment_id=payment.pk,
            kind=ProviderAttemptKind.LOOKUP,
            idempotency_key="",
            outcome=ProviderAttemptOutcome.TRANSIENT,
            http_status=exc.http_status,
            error=str(exc),
            duration_ms=int((time.monotonic() - started) * 1000),
            attempt_id=attempt_id,
        )
        raise ConcordError(
            f"The provider could not be asked about payment {payment_id}: {exc}",
            code="provider_unavailable",
            http_status=503,
        ) from None
    ours = [c for c in charges if _charge_matches(payment, c)]
    succeeded = [c for c in ours if c.status == "succeeded"]
    found = succeeded[0] if succeeded else (ours[-1] if ours else None)
    provider_attempt_record(
        payment_id=payment.pk,
        kind=ProviderAttemptKind.LOOKUP,
        idempotency_key="",
        outcome=(
            ProviderAttemptOutcome.SUCCEEDED
            if succeeded
            else ProviderAttemptOutcome.DECLINED
            if ours
            else ProviderAttemptOutcome.UNKNOWN
        ),
        provider_object_id=found.id if found else "",
        http_status=200,
        error="" if ours else f"no charge with reference {payment.order_id}",
        duration_ms=int((time.monotonic() - started) * 1000),
        attempt_id=attempt_id,
    )
    if succeeded:
        # More than one succeeded charge would be a duplicate charge: we capture the
        # first; reconciliation reports the other (it belongs to no confirmed order).
        return payment_capture(
            payment_id=payment.pk,
            provider_charge_id=succeeded[0].id,
            reason=f"lookup found succeeded charge {succeeded[0].id}",
        )
    if ours:
        code = (ours[-1].failure_code or "declined")[:64]
        return payment_fail(
            payment_id=payment.pk, failure_code=code, reason=f"lookup found failed charge {ours[-1].id}"
        )
    if not_found_means_failed:
        return payment_fail(
            payment_id=payment.pk,
            failure_code="not_charged",
            reason=f"lookup: the provider has no charge for order {payment.order_id}",
        )
    return PaymentDTO.from_model(payment)


def payment_refund_through_provider(
    *,
    payment_id: int,
    amount: Decimal | None = None,
    reason: str,
    by: User = None,
    idempotency_key: str | None = None,
    timeout: float | None = None,
) -> RefundOutcome:
    """Refund captured money through the provider; safe to call again after any
    failure.

    Which refund: with `idempotency_key`, the refund created under that key (made on
    the first call); without one, a refund still pending for this payment (a call
    that timed out before) is resumed, otherwise a new one is created. `amount`
    None = everything not yet refunded (pending refunds excluded). The provider is
    asked with the refund's fixed key, so a retry never refunds twice.

    succeeded -> refund_succeed (ledger posted); declined -> refund_fail (its amount
    becomes refundable again); transient/unknown -> the refund stays pending: call
    again (same arguments) later. Nothing left to refund -> succeeded, refund None.
    """
    _refuse_open_transaction("payment_refund_through_provider")
    if not isinstance(reason, str) or (by is not None and not reason.strip()):
        raise ConcordError("A reason is required.", code="reason_required")
    refund = None
    if idempotency_key is not None:
        _require_text(idempotency_key, field="idempotency_key", code="idempotency_key_invalid")
        refund = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if refund is not None and refund.payment_id != payment_id:
            raise Conflict(
                f"Refund key {idempotency_key!r} belongs to another payment.",
                code="idempotency_key_reused",
                details={"refund_id": refund.pk},
            )
    else:
        pending = Refund.objects.filter(payment_id=payment_id, status=RefundStatus.PENDING)
        if amount is not None:
            pending = pending.filter(amount=amount)
        refund = pending.order_by("id").first()
    if refund is None:
        payment = _get_payment(payment_id)
        if amount is None:
            with transaction.atomic():
                payment = _lock_payment(payment_id)
                if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED):
                    remainder = payment.amount - payment.refunded_amount - _pending_refund_total(payment)
                    if remainder <= 0:
                        return RefundOutcome(Outcome.SUCCEEDED, PaymentDTO.from_model(payment), None)
                    dto = refund_create(
                        payment_id=payment_id,
                        amount=remainder,
                        reason=reason,
                        by=by,
                        idempotency_key=idempotency_key,
                    )
                elif payment.status == PaymentStatus.REFUNDED:
                    return RefundOutcome(Outcome.SUCCEEDED, PaymentDTO.from_model(payment), None)
                else:
                    raise Conflict(
                        f"Payment {payment_id} is {payment.status}; only captured money can be refunded.",
                        code="payment_not_refundable",
                        details={"payment_id": payment_id, "status": payment.status},
                    )
        else:
            dto = refund_create(
                payment_id=payment_id, amount=amount, reason=reason, by=by, idempotency_key=idempotency_key
            )
        refund = Refund.objects.get(pk=dto.id)
    payment = _get_payment(refund.payment_id)
    if refund.status == RefundStatus.SUCCEEDED:
        return RefundOutcome(Outcome.SUCCEEDED, PaymentDTO.from_model(payment), RefundDTO.from_model(refund))
    if refund.status == RefundStatus.FAILED:
        return RefundOutcome(
            Outcome.DECLINED,
            PaymentDTO.from_model(payment),
            RefundDTO.from_model(refund),
            failure_code=refund.failure_code,
            error=f"refund {refund.pk} was refused: {refund.failure_code}",
        )
    with _provider_client(timeout) as client:
        result = client.create_refund(
            charge_id=payment.provider_charge_id or "",
            amount=to_minor_units(refund.amount, refund.currency),
            idempotency_key=refund.idempotency_key,
        )
    provider_attempt_record(
        payment_id=payment.pk,
        refund_id=refund.pk,
        kind=ProviderAttemptKind.REFUND,
        idempotency_key=refund.idempotency_key,
        outcome=str(result.outcome),
        provider_object_id=result.refund.id if result.refund is not None else "",
        http_status=result.http_status,
        error=result.error or "",
        duration_ms=result.duration_ms,
        attempt_id=result.attempt_id,
    )
    failure_code = result.failure_code or ""
    if result.outcome is Outcome.SUCCEEDED:
        assert result.refund is not None
        refund_dto = refund_succeed(
            refund_id=refund.pk, provider_refund_id=result.refund.id, by=by, reason=reason or "refunded"
        )
    elif result.outcome is Outcome.DECLINED:
        failure_code = (failure_code or "refund_declined")[:64]
        refund_dto = refund_fail(
            refund_id=refund.pk, failure_code=failure_code, by=by, reason=f"provider refused: {result.error}"
        )
    else:
        refund_dto = RefundDTO.from_model(Refund.objects.get(pk=refund.pk))
    return RefundOutcome(
        str(result.outcome),
        PaymentDTO.from_model(_get_payment(payment.pk)),
        refund_dto,
        failure_code=failure_code,
        error=result.error or "",
    )


def payment_apply_provider_event(*, event_type: str, charge: dict) -> PaymentDTO | None:
    """Provider news about a charge (webhook charge.succeeded / charge.failed).

    Resolves a payment that is still pending or unknown — the provider's answer
    may have been lost — exactly as a successful retry would: capture or fail.
    Idempotent (repeated or reordered events change nothing once the payment is
    settled) and conservative: an event about a charge that does not match the
    payment (other amount/currency, or a second charge for a captured payment)
    changes nothing; reconciliation reports such charges. Returns the payment,
    or None when no payment has this reference. Other event types are ignored."""
    if event_type not in ("charge.succeeded", "charge.failed"):
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
    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN) or not _charge_matches(
        payment, parsed
    ):
        return PaymentDTO.from_model(payment)
    with transaction.atomic():
        locked = _lock_payment(payment.pk)
        if locked.status not in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN):
            return PaymentDTO.from_model(locked)
        if event_type == "charge.succeeded" and parsed.status == "succeeded":
            return payment_capture(
                payment_id=payment.pk,
                provider_charge_id=parsed.id,
                reason=f"webhook {event_type} {parsed.id}",
            )
        if event_type == "charge.failed" and parsed.status == "failed":
            return payment_fail(
                payment_id=payment.pk,
                failure_code=(parsed.failure_code or "declined")[:64],
                reason=f"webhook {event_type} {parsed.id}",
            )
    return PaymentDTO.from_model(payment)
