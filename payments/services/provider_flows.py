"""Asking the provider: charges, lookups and refunds, each split into a call and a record.

The split (the charge's, now every flow's): `*_call` talks to the provider over HTTP
with no transaction open and writes nothing; `*_record` writes down what the call
established — the ProviderAttempt and the state change — in ONE transaction, the
caller's (a saga step's checkpoint) or its own. No row lock is ever held while the
provider is being asked: a slow provider must not block the rows other requests and
the saga checkpoints need. The call halves refuse to run inside a transaction.

Retry safety: a charge always carries payment.charge_idempotency_key and a refund its
Refund row's fixed provider_key (both random, stored at creation: unique by
construction, even across a recreated database), so calling again (after a timeout, a crash, a lost lease, a
record that never committed) repeats the same request and the provider replays its
first answer instead of moving money twice.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from django.db import transaction

from core.audit import check_reason
from core.errors import ConcordError
from core.money import to_minor_units

from ..choices import PaymentStatus, ProviderAttemptKind, ProviderAttemptOutcome, RefundStatus
from ..dto import PaymentDTO, RefundDTO
from ..models import Payment, Refund
from ..provider import (
    ChargeResult,
    Outcome,
    ProviderCharge,
    ProviderChargeStatus,
    ProviderError,
    ProviderRefund,
    RefundResult,
    provider_attempt,
)
from ._common import (
    SETTLED_CAPTURE_STATES,
    UNSETTLED_STATES,
    User,
    get_payment,
    get_refund,
    lock_payment,
    lock_refund_and_payment,
    refuse_open_transaction,
)
from .client import charge_attempt_record_locked, charge_matches, provider_attempt_record, provider_client
from .payments import (
    capture_locked,
    capture_refusal,
    payment_capture,
    payment_fail,
    payment_mark_unknown_if_pending,
)
from .refunds import refund_fail, refund_open, refund_succeed

logger = logging.getLogger(__name__)

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
    """What one charge established. `outcome` is a provider Outcome value:
    succeeded (payment captured), declined (payment failed, permanent), transient
    (retry later, same key), unknown (payment unknown: retry with the same key or
    resolve by lookup)."""

    outcome: str
    payment: PaymentDTO
    failure_code: str = ""
    error: str = ""

    @property
    def card_declined(self) -> bool:
        return self.outcome == Outcome.DECLINED and self.failure_code in CARD_DECLINE_CODES


@dataclass(frozen=True)
class RefundOutcome:
    """What one refund established. `refund` is None only when there was nothing
    left to refund (outcome succeeded, nothing moved)."""

    outcome: str
    payment: PaymentDTO
    refund: RefundDTO | None
    failure_code: str = ""
    error: str = ""


# --- charges ---------------------------------------------------------------------------


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
    refuse_open_transaction("payment_charge_call")
    payment = get_payment(payment_id)
    key = payment.charge_idempotency_key
    if payment.status in SETTLED_CAPTURE_STATES or payment.status == PaymentStatus.FAILED:
        return ChargeCall(payment.pk, key, None)
    with provider_client(timeout) as client:
        result = client.create_charge(
            amount=to_minor_units(payment.amount, payment.currency),
            currency=payment.currency,
            payment_method=payment.payment_method,
            reference=str(payment.order_id),
            idempotency_key=key,
        )
    return ChargeCall(payment.pk, key, result)


def _settled_charge(payment: Payment) -> ChargeOutcome:
    """The outcome of a charge that needed no call: the payment's settled state."""
    if payment.status in SETTLED_CAPTURE_STATES:
        return ChargeOutcome(Outcome.SUCCEEDED, PaymentDTO.from_model(payment))
    if payment.status == PaymentStatus.FAILED:
        return ChargeOutcome(
            Outcome.DECLINED, PaymentDTO.from_model(payment), failure_code=payment.failure_code
        )
    return ChargeOutcome(Outcome.TRANSIENT, PaymentDTO.from_model(payment), error="no charge was made")


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
        return _settled_charge(get_payment(call.payment_id))
    result = call.result
    # The payment's row lock before the attempt's insert (whose foreign key takes a
    # share lock on it): a webhook's lookup settling the same payment at the same
    # moment waits instead of deadlocking with this (both share, both want update).
    payment = lock_payment(call.payment_id)
    outcome, error = result.outcome, result.error or ""
    failure_code = result.failure_code or ""
    charge = result.charge
    if outcome is Outcome.SUCCEEDED and charge is not None and not charge_matches(payment, charge):
        # The provider says it charged something else than we asked: never capture
        # it as ours. A person (and reconciliation) must look at it.
        outcome = Outcome.UNKNOWN
        error = f"charge {charge.id} is {charge.amount} {charge.currency} for {charge.reference}, not this payment"
    # The payment is locked above: the attempt's insert needs no look-up of it.
    record = partial(
        charge_attempt_record_locked,
        payment,
        idempotency_key=call.idempotency_key,
        provider_object_id=charge.id if charge is not None else "",
        charge_id=charge.id if charge is not None else "",
        http_status=result.http_status,
        duration_ms=result.duration_ms,
        attempt_id=result.attempt_id,
    )
    if outcome is Outcome.SUCCEEDED:
        assert charge is not None
        refusal = capture_refusal(payment, charge.id)
        if refusal is None:
            # The usual case, checked before writing: no savepoint (two round trips).
            record(outcome=str(outcome), error=error)
            dto = capture_locked(
                payment, provider_charge_id=charge.id, reason=f"provider charge {charge.id} succeeded"
            )
            return ChargeOutcome(str(outcome), dto, failure_code=failure_code, error=error)
    try:
        with transaction.atomic():  # a savepoint: a refusal undoes only this
            record(outcome=str(outcome), error=error)
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
                dto = payment_mark_unknown_if_pending(payment_id=payment.pk, error=error)
            else:
                dto = PaymentDTO.from_model(payment)
    except ConcordError as exc:
        # The timeline must still show the call.
        error = f"{error + '; ' if error else ''}answer not applied: {exc}"
        record(outcome=str(Outcome.UNKNOWN), error=error)
        return ChargeOutcome(
            str(Outcome.UNKNOWN), PaymentDTO.from_model(get_payment(payment.pk)), error=error
        )
    return ChargeOutcome(str(outcome), dto, failure_code=failure_code, error=error)


def payment_charge(*, payment_id: int, timeout: float | None = None) -> ChargeOutcome:
    """Charge through the provider and record the answer in one commit of its own
    (payment_charge_call, then payment_charge_record). For callers outside a saga;
    the checkout saga calls the two halves itself so that recording the answer
    rides in its step's checkpoint."""
    call = payment_charge_call(payment_id=payment_id, timeout=timeout)
    return payment_charge_record(call=call)


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
    refuse_open_transaction("payment_resolve_by_lookup")
    payment = get_payment(payment_id)
    if payment.status not in UNSETTLED_STATES:
        return PaymentDTO.from_model(payment)
    started = time.monotonic()
    attempt_id = ""
    try:
        # One attempt id for every page of the lookup.
        with provider_attempt() as attempt_id, provider_client(timeout) as client:
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
    ours = [c for c in charges if charge_matches(payment, c)]
    succeeded = [c for c in ours if c.status == ProviderChargeStatus.SUCCEEDED]
    found = succeeded[0] if succeeded else (ours[-1] if ours else None)
    record = partial(
        provider_attempt_record,
        payment_id=payment.pk,
        kind=ProviderAttemptKind.LOOKUP,
        idempotency_key="",
        provider_object_id=found.id if found else "",
        charge_id=found.id if found else "",
        http_status=200,
        duration_ms=int((time.monotonic() - started) * 1000),
        attempt_id=attempt_id,
    )
    outcome = (
        ProviderAttemptOutcome.SUCCEEDED
        if succeeded
        else ProviderAttemptOutcome.DECLINED
        if ours
        else ProviderAttemptOutcome.UNKNOWN
    )
    error = "" if ours else f"no charge with reference {payment.order_id}"
    try:
        with transaction.atomic():  # the attempt and what it settles commit together
            lock_payment(payment.pk)  # before the attempt's insert: see payment_charge_record
            record(outcome=outcome, error=error)
            return _settle_from_lookup(payment, succeeded, ours, not_found_means_failed)
    except ConcordError as exc:
        record(outcome=ProviderAttemptOutcome.UNKNOWN, error=f"answer not applied: {exc}")
        raise


def _settle_from_lookup(
    payment: Payment,
    succeeded: list[ProviderCharge],
    ours: list[ProviderCharge],
    not_found_means_failed: bool,
) -> PaymentDTO:
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


# --- refunds of a payment's capture ----------------------------------------------------


@dataclass(frozen=True)
class RefundCall:
    """What refund_call learnt, for refund_record to write down. `result` is None
    when no call was made (the refund was settled already)."""

    refund_id: int
    payment_id: int
    charge_id: str
    idempotency_key: str
    result: RefundResult | None


def refund_call(*, refund_id: int, timeout: float | None = None) -> RefundCall:
    """Ask the provider for a refund created before (refunds.refund_open); write
    nothing. The request carries the refund's fixed key, so a repeat replays."""
    refuse_open_transaction("refund_call")
    refund = get_refund(refund_id)
    payment = get_payment(refund.payment_id)
    charge_id = payment.provider_charge_id or ""
    if refund.status != RefundStatus.PENDING:
        return RefundCall(refund.pk, payment.pk, charge_id, refund.provider_key, None)
    with provider_client(timeout) as client:
        result = client.create_refund(
            charge_id=charge_id,
            amount=to_minor_units(refund.amount, refund.currency),
            idempotency_key=refund.provider_key,
        )
    return RefundCall(refund.pk, payment.pk, charge_id, refund.provider_key, result)


def _settled_refund(refund_id: int) -> RefundOutcome:
    refund = get_refund(refund_id)
    payment = PaymentDTO.from_model(get_payment(refund.payment_id))
    dto = RefundDTO.from_model(refund)
    if refund.status == RefundStatus.SUCCEEDED:
        return RefundOutcome(Outcome.SUCCEEDED, payment, dto)
    if refund.status == RefundStatus.FAILED:
        return RefundOutcome(
            Outcome.DECLINED,
            payment,
            dto,
            failure_code=refund.failure_code,
            error=f"refund {refund.pk} was refused: {refund.failure_code}",
        )
    return RefundOutcome(Outcome.TRANSIENT, payment, dto, error="no refund was asked for")


@transaction.atomic(savepoint=False)
def refund_record(*, call: RefundCall, by: User = None, reason: str = "") -> RefundOutcome:
    """Write down what a refund call established, in one transaction (the caller's,
    e.g. a saga checkpoint): the ProviderAttempt and succeeded -> refund_succeed
    (payment refunded, ledger posted); declined -> refund_fail (its amount becomes
    refundable again); transient / unknown -> the refund stays pending: send it
    again later (same key). Like payment_charge_record it never raises for the
    provider's answer: a refusal to apply it is recorded as an unknown outcome."""
    if call.result is None:
        return _settled_refund(call.refund_id)
    result = call.result
    outcome, error = result.outcome, result.error or ""
    failure_code = result.failure_code or ""
    record = partial(
        provider_attempt_record,
        payment_id=call.payment_id,
        refund_id=call.refund_id,
        kind=ProviderAttemptKind.REFUND,
        idempotency_key=call.idempotency_key,
        provider_object_id=result.refund.id if result.refund is not None else "",
        charge_id=call.charge_id,
        http_status=result.http_status,
        duration_ms=result.duration_ms,
        attempt_id=result.attempt_id,
    )
    try:
        with transaction.atomic():  # a savepoint: a refusal undoes only this
            # Locks before the attempt's insert (see payment_charge_record): the sweeper, a
            # webhook and the task may record the same refund at once.
            lock_refund_and_payment(call.refund_id)
            record(outcome=str(outcome), error=error)
            if outcome is Outcome.SUCCEEDED:
                assert result.refund is not None
                refund_succeed(
                    refund_id=call.refund_id,
                    provider_refund_id=result.refund.id,
                    by=by,
                    reason=reason or "refunded",
                )
            elif outcome is Outcome.DECLINED:
                failure_code = (failure_code or "refund_declined")[:64]
                refund_fail(
                    refund_id=call.refund_id,
                    failure_code=failure_code,
                    by=by,
                    reason=f"provider refused: {error}",
                )
    except ConcordError as exc:
        error = f"{error + '; ' if error else ''}answer not applied: {exc}"
        record(outcome=str(Outcome.UNKNOWN), error=error)
        outcome = Outcome.UNKNOWN
    refund = get_refund(call.refund_id)
    return RefundOutcome(
        str(outcome),
        PaymentDTO.from_model(get_payment(call.payment_id)),
        RefundDTO.from_model(refund),
        failure_code=failure_code,
        error=error,
    )


def refund_send(
    *, refund_id: int, by: User = None, reason: str = "", timeout: float | None = None
) -> RefundOutcome:
    """Send a refund created before to the provider and record the answer in one
    commit of its own. Never creates a refund. Safe to call again after any failure."""
    call = refund_call(refund_id=refund_id, timeout=timeout)
    return refund_record(call=call, by=by, reason=reason)


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
    failure: refund_open (which refund: see there), then refund_send.

    succeeded -> refund_succeed (ledger posted); declined -> refund_fail (its amount
    becomes refundable again); transient/unknown -> the refund stays pending: call
    again (same arguments) later. Nothing left to refund -> succeeded, refund None.
    """
    refuse_open_transaction("payment_refund_through_provider")
    reason = check_reason(reason, by=by)
    refund = refund_open(
        payment_id=payment_id, amount=amount, reason=reason, by=by, idempotency_key=idempotency_key
    )
    if refund is None:
        return RefundOutcome(Outcome.SUCCEEDED, PaymentDTO.from_model(get_payment(payment_id)), None)
    return refund_send(refund_id=refund.id, by=by, reason=reason, timeout=timeout)


# --- refunds of charges no payment holds ----------------------------------------------


@dataclass(frozen=True)
class ChargeRefundOutcome:
    """What refunding a charge no payment holds established: `refund` is the
    provider's refund when it succeeded."""

    outcome: str
    charge_id: str
    refund: ProviderRefund | None
    failure_code: str = ""
    error: str = ""


def charge_refund(
    *,
    charge_id: str,
    amount_minor: int,
    reference: str,
    idempotency_key: str,
    timeout: float | None = None,
) -> ChargeRefundOutcome:
    """Give back a charge that no payment holds (an orphan, or an extra charge of an
    order paid twice): reconciliation's remediation. Payments has no Refund row for
    it and posts nothing to the ledger (the charge never entered it); the call is
    recorded as a ProviderAttempt like every other — on the payment of the order the
    charge's `reference` names, if there is one, else on the charge alone. The key
    is the caller's, fixed per remediation, so a repeat refunds once."""
    refuse_open_transaction("charge_refund")
    with provider_client(timeout) as client:
        result = client.create_refund(
            charge_id=charge_id, amount=amount_minor, idempotency_key=idempotency_key
        )
    payment_id = (
        Payment.objects.filter(order_id=int(reference)).values_list("pk", flat=True).first()
        if reference.isdigit()
        else None
    )
    provider_attempt_record(
        payment_id=payment_id,
        kind=ProviderAttemptKind.REFUND,
        idempotency_key=idempotency_key,
        outcome=str(result.outcome),
        provider_object_id=result.refund.id if result.refund is not None else "",
        charge_id=charge_id,
        http_status=result.http_status,
        error=result.error or "",
        duration_ms=result.duration_ms,
        attempt_id=result.attempt_id,
    )
    return ChargeRefundOutcome(
        str(result.outcome),
        charge_id,
        result.refund,
        failure_code=result.failure_code or "",
        error=result.error or result.failure_code or "",
    )


# --- the sweeper: every pending refund is resumed ------------------------------------


@dataclass(frozen=True)
class ResumedRefund:
    refund_id: int
    outcome: str
    status: str  # the refund's status after sending it again
    error: str = ""


def refunds_resume(*, older_than: float | None = None, limit: int = 200) -> list[ResumedRefund]:
    """Send again every refund still pending `older_than` seconds after it was asked
    for (default settings.PAYMENTS_REFUND_RESUME_AFTER), oldest first, with its own
    provider key: the provider refunds it once, or replays the answer it gave.

    This is what makes a refund a durable intent, whoever asked for it (a back-office
    task whose message was lost or whose retries ran out, a worker killed mid-send, a
    saga compensation, a remediation): it ends succeeded or failed, or — while the
    provider cannot answer — stays pending and is sent again next time, until
    reconciliation's refund_pending detector opens an incident past its SLA. The grace
    period leaves fresh refunds to the task that was asked to send them."""
    from django.conf import settings
    from django.utils import timezone

    refuse_open_transaction("refunds_resume")
    if older_than is None:
        older_than = float(settings.PAYMENTS_REFUND_RESUME_AFTER)
    cutoff = timezone.now() - datetime.timedelta(seconds=older_than)
    pending = list(
        Refund.objects.filter(status=RefundStatus.PENDING, created_at__lte=cutoff)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    resumed = []
    for refund_id in pending:
        try:
            sent = refund_send(refund_id=refund_id, reason="pending refund resumed by the sweeper")
        except ConcordError as exc:
            logger.warning("refund %s could not be resumed: %s", refund_id, exc)
            resumed.append(ResumedRefund(refund_id, "error", RefundStatus.PENDING, f"{exc.code}: {exc}"))
            continue
        status = sent.refund.status if sent.refund is not None else RefundStatus.PENDING
        log = logger.info if status != RefundStatus.PENDING else logger.warning
        log("pending refund %s resumed: %s -> %s %s", refund_id, sent.outcome, status, sent.error)
        resumed.append(ResumedRefund(refund_id, str(sent.outcome), str(status), sent.error))
    return resumed
