"""Reads of the payments app: ids in, frozen dataclasses and plain values out."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django_fsm_log.models import StateLog

from core.errors import NotFound
from core.fsm import state_log_row, state_log_rows, state_summary, waiting_in_state, waiting_in_states
from core.sql import Part, column, parts_sql, read_parts

from ._rows import payment_row
from .choices import LedgerAccountCode, LedgerTransactionKind, PaymentStatus, RefundStatus
from .dto import PaymentDTO, ProviderAttemptDTO, RefundDTO
from .models import (
    LedgerAccount,
    LedgerBalanceByHour,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    ProviderAttempt,
    ProviderWebhookEvent,
    Refund,
)


def payment_get(*, payment_id: int) -> PaymentDTO:
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None:
        raise NotFound(
            f"Payment {payment_id} does not exist.",
            code="payment_not_found",
            details={"payment_id": payment_id},
        )
    return PaymentDTO.from_model(payment)


def payment_for_order(*, order_id: int) -> PaymentDTO | None:
    """The checkout payment of an order, or None if the saga has not created it yet."""
    payment = payment_row("order_id", order_id)  # order_id is unique
    return None if payment is None else PaymentDTO.from_model(payment)


def payment_refundable_amount(*, payment_id: int) -> Decimal:
    """What can still be refunded: captured, minus refunded, minus what pending refunds
    hold back (refund_create's own limit). Zero unless the payment holds money."""
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None or payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED):
        return Decimal("0")
    pending = payment.refunds.filter(status=RefundStatus.PENDING).aggregate(
        total=Coalesce(Sum("amount"), Decimal("0"))
    )["total"]
    return payment.amount - payment.refunded_amount - pending


@dataclass(frozen=True)
class PaymentCase:
    """An order's payment as a case file shows it (None before the saga created it)."""

    payment: PaymentDTO | None
    refunds: tuple[RefundDTO, ...]  # oldest first
    refundable: Decimal  # payment_refundable_amount's figure, from the same rows


def payment_case_for_order(*, order_id: int) -> PaymentCase:
    """An order's payment, its refunds and what can still be refunded: two queries (the
    refundable amount is worked out from those rows, as payment_refundable_amount
    would read it, instead of reading the payment and its pending refunds again)."""
    payment = payment_for_order(order_id=order_id)
    if payment is None:
        return PaymentCase(None, (), Decimal("0"))
    return _payment_case(payment, tuple(refunds_for_payment(payment_id=payment.id)))


def _payment_case(payment: PaymentDTO | None, refunds: tuple[RefundDTO, ...]) -> PaymentCase:
    if payment is None:
        return PaymentCase(None, (), Decimal("0"))
    refundable = Decimal("0")
    if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED):
        pending = sum((r.amount for r in refunds if r.status == RefundStatus.PENDING), Decimal("0"))
        refundable = payment.amount - payment.refunded_amount - pending
    return PaymentCase(payment, refunds, refundable)


@dataclass(frozen=True)
class PaymentStory:
    """Everything the payments app knows about an order's money, for its case file:
    payment_case_for_order, then (empty without a payment) what provider_attempts_for_payment,
    payment_audit_log, ledger_entries_for_payment and webhook_events_about return."""

    case: PaymentCase
    attempts: tuple[ProviderAttemptDTO, ...]
    audit: tuple[dict, ...]
    ledger: tuple[dict, ...]
    webhooks: tuple[dict, ...]


WEBHOOK_EVENTS_LIMIT = 100


def payment_story_for_order(*, order_id: int) -> PaymentStory:
    """payment_case_for_order plus the payment's provider attempts, audit log (its own
    and its refunds' state changes), ledger postings and the provider's webhook events
    about it, in one statement built once per process (an order's case file read them
    in six; compiling them cost more CPU than running them)."""
    payment_ct = ContentType.objects.get_for_model(Payment).pk  # cached per process
    refund_ct = ContentType.objects.get_for_model(Refund).pk
    params = [
        order_id,  # the payment
        order_id,  # its refunds
        order_id,  # its provider attempts
        payment_ct,
        order_id,
        refund_ct,
        order_id,  # the audit log
        order_id,  # the ledger
        order_id,  # the webhook events: the payment's charge id,
        str(order_id),  # and the order as the charge's reference
    ]
    payments, refunds, attempts, logs, entries, events = read_parts(_story_sql(), params, _story_parts())
    payment = PaymentDTO.from_model(payments[0][0]) if payments else None
    case = _payment_case(payment, tuple(RefundDTO.from_model(r) for r, _ in refunds))
    return PaymentStory(
        case=case,
        attempts=tuple(ProviderAttemptDTO.from_model(a) for a, _ in attempts),
        audit=tuple(
            state_log_row(
                log, by, label="payment" if log.content_type_id == payment_ct else f"refund {log.object_id}"
            )
            for log, (by,) in logs
        ),
        ledger=tuple(_ledger_row(entry, *extra) for entry, extra in entries),
        webhooks=tuple(_webhook_event_row(e) for e, _ in events),
    )


@functools.cache
def _story_parts() -> tuple[Part, ...]:
    quote = connection.ops.quote_name
    pay, ref, att, log, entry, txn, acct, hook = (
        quote(m._meta.db_table)
        for m in (
            Payment,
            Refund,
            ProviderAttempt,
            StateLog,
            LedgerEntry,
            LedgerTransaction,
            LedgerAccount,
            ProviderWebhookEvent,
        )
    )
    user_model = get_user_model()
    users = quote(user_model._meta.db_table)
    username = f"{users}.{column(user_model, user_model.USERNAME_FIELD)}"
    the_payment = f"SELECT {pay}.id FROM {pay} WHERE {pay}.{column(Payment, 'order_id')} = %s"  # noqa: S608
    its_refunds = f"SELECT {ref}.id FROM {ref} WHERE {ref}.{column(Refund, 'payment')} IN ({the_payment})"  # noqa: S608
    # The order's payment's charge id ('' before the provider answered); no row without
    # a payment, so no webhook events then (the case file read them only with one).
    charge = (
        f"(SELECT coalesce({pay}.{column(Payment, 'provider_charge_id')}, '') AS charge"  # noqa: S608
        f" FROM {pay} WHERE {pay}.{column(Payment, 'order_id')} = %s) AS c"
    )
    payload = f"{hook}.{column(ProviderWebhookEvent, 'payload')}"
    # webhook_events_about's match, as the ORM writes it (jsonb equality with a JSON string).
    about = (
        f"({payload} #> '{{data,object,reference}}') = to_jsonb(%s::text)"
        f" OR (c.charge <> '' AND (({payload} #> '{{data,object,id}}') = to_jsonb(c.charge)"
        f" OR ({payload} #> '{{data,object,charge}}') = to_jsonb(c.charge)))"
    )
    return (
        Part(Payment, f"FROM {pay} WHERE {pay}.{column(Payment, 'order_id')} = %s", f"{pay}.id"),
        Part(Refund, f"FROM {ref} WHERE {ref}.{column(Refund, 'payment')} IN ({the_payment})", f"{ref}.id"),
        Part(
            ProviderAttempt,
            f"FROM {att} WHERE {att}.{column(ProviderAttempt, 'payment')} IN ({the_payment})",
            f"{att}.id",
        ),
        Part(
            StateLog,
            f"FROM {log} LEFT JOIN {users} ON {users}.id = {log}.{column(StateLog, 'by')}"
            f" WHERE ({log}.{column(StateLog, 'content_type')} = %s AND {log}.{column(StateLog, 'object_id')} IN ({the_payment}))"
            f" OR ({log}.{column(StateLog, 'content_type')} = %s AND {log}.{column(StateLog, 'object_id')} IN ({its_refunds}))",
            f"{log}.{column(StateLog, 'timestamp')}, {log}.id",
            extra=(username,),
        ),
        Part(
            LedgerEntry,
            f"FROM {entry} JOIN {txn} ON {txn}.id = {entry}.{column(LedgerEntry, 'transaction')}"
            f" JOIN {acct} ON {acct}.id = {entry}.{column(LedgerEntry, 'account')}"
            f" WHERE {txn}.{column(LedgerTransaction, 'payment')} IN ({the_payment})",
            f"{txn}.{column(LedgerTransaction, 'created_at')}, {entry}.{column(LedgerEntry, 'transaction')}, {entry}.id",
            extra=(
                *(
                    f"{txn}.{column(LedgerTransaction, f)}"
                    for f in ("created_at", "kind", "reference", "memo")
                ),
                f"{acct}.{column(LedgerAccount, 'code')}",
            ),
        ),
        Part(
            ProviderWebhookEvent,
            f"FROM {hook} CROSS JOIN {charge} WHERE ({about})",
            f"{hook}.{column(ProviderWebhookEvent, 'first_seen_at')}, {hook}.id",
            limit=WEBHOOK_EVENTS_LIMIT,
        ),
    )


@functools.cache
def _story_sql() -> str:
    return parts_sql(_story_parts())


def refund_get(*, refund_id: int) -> RefundDTO:
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        raise NotFound(
            f"Refund {refund_id} does not exist.", code="refund_not_found", details={"refund_id": refund_id}
        )
    return RefundDTO.from_model(refund)


def refund_for_key(*, payment_id: int, idempotency_key: str) -> RefundDTO:
    """The payment's refund created under `idempotency_key`; NotFound otherwise."""
    refund = Refund.objects.filter(payment_id=payment_id, idempotency_key=idempotency_key).first()
    if refund is None:
        raise NotFound(
            f"Payment {payment_id} has no refund with key {idempotency_key!r}.",
            code="refund_not_found",
            details={"payment_id": payment_id, "idempotency_key": idempotency_key},
        )
    return RefundDTO.from_model(refund)


def refunds_for_payment(*, payment_id: int) -> list[RefundDTO]:
    """Oldest first."""
    return [RefundDTO.from_model(r) for r in Refund.objects.filter(payment_id=payment_id).order_by("id")]


def provider_attempts_for_payment(*, payment_id: int) -> list[ProviderAttemptDTO]:
    """The provider-call timeline of a payment (charges, refunds, lookups), oldest first."""
    attempts = ProviderAttempt.objects.filter(payment_id=payment_id).order_by("id")
    return [ProviderAttemptDTO.from_model(a) for a in attempts]


def provider_attempts_for_charge(*, charge_id: str) -> list[ProviderAttemptDTO]:
    """Every call about one provider charge (its charge, lookups, refunds — including
    refunds of a charge no payment holds), oldest first."""
    attempts = ProviderAttempt.objects.filter(charge_id=charge_id).order_by("id") if charge_id else []
    return [ProviderAttemptDTO.from_model(a) for a in attempts]


def ledger_account_balance(*, code: str, currency: str) -> Decimal:
    """Sum of the account's signed entries (debit positive). provider_clearing's
    balance is what the provider holds for us: captured minus refunded."""
    total = LedgerEntry.objects.filter(account__code=code, account__currency=currency).aggregate(
        total=Coalesce(Sum("amount"), Decimal("0"))
    )["total"]
    return Decimal(total)


def ledger_unbalanced_transactions() -> list[int]:
    """Ids of ledger transactions whose entries do not sum to zero, have fewer than
    two entries, or mix currencies — one grouped query. The commit-time trigger
    makes this empty; it is the check for reconciliation."""
    rows = (
        LedgerTransaction.objects.annotate(
            total=Coalesce(Sum("entries__amount"), Decimal("0")),
            entry_count=Count("entries"),
            foreign=Count("entries", filter=~Q(entries__currency=F("currency"))),
        )
        .filter(~Q(total=0) | Q(entry_count__lt=2) | Q(foreign__gt=0))
        .order_by("id")
        .values_list("id", flat=True)
    )
    return list(rows)


# --- Back-office reads ----------------------------------------------------------------


def payments_for_orders(*, order_ids: list[int]) -> dict[int, PaymentDTO]:
    """order id -> its payment, one query for a whole page of orders."""
    return {
        p.order_id: PaymentDTO.from_model(p) for p in Payment.objects.filter(order_id__in=list(order_ids))
    }


def refunds_for_payments(*, payment_ids: list[int]) -> dict[int, list[RefundDTO]]:
    """payment id -> its refunds, oldest first; one query for a whole page."""
    found: dict[int, list[RefundDTO]] = {}
    for refund in Refund.objects.filter(payment_id__in=list(payment_ids)).order_by("id"):
        found.setdefault(refund.payment_id, []).append(RefundDTO.from_model(refund))
    return found


def payments_by_charge_id(*, provider_charge_id: str) -> list[PaymentDTO]:
    """Search by the provider's charge id (exact), or by a provider attempt that
    returned it (a duplicate charge is recorded on the attempt, not the payment)."""
    charge_id = (provider_charge_id or "").strip()
    if not charge_id:
        return []
    via_attempt = (
        ProviderAttempt.objects.filter(Q(provider_object_id=charge_id) | Q(charge_id=charge_id))
        .filter(payment__isnull=False)
        .values("payment_id")
    )
    payments = Payment.objects.filter(Q(provider_charge_id=charge_id) | Q(pk__in=via_attempt)).order_by("id")
    return [PaymentDTO.from_model(p) for p in payments]


def ledger_entries_for_payment(*, payment_id: int) -> list[dict]:
    """The payment's postings (captures and refunds), oldest first: one query."""
    entries = (
        LedgerEntry.objects.filter(transaction__payment_id=payment_id)
        .select_related("transaction", "account")
        .order_by("transaction__created_at", "transaction_id", "id")
    )
    return [
        _ledger_row(
            e,
            e.transaction.created_at,
            e.transaction.kind,
            e.transaction.reference,
            e.transaction.memo,
            e.account.code,
        )
        for e in entries
    ]


def _ledger_row(entry: LedgerEntry, at, kind: str, reference: str, memo: str, account: str) -> dict:
    return {
        "at": at,
        "transaction_id": entry.transaction_id,
        "kind": kind,
        "reference": reference,
        "account": account,
        "amount": entry.amount,
        "currency": entry.currency,
        "memo": memo,
    }


def payment_audit_log(*, payment_id: int) -> list[dict]:
    """State changes of the payment and its refunds (django-fsm-log), oldest first."""
    payment_type = ContentType.objects.get_for_model(Payment)
    refund_type = ContentType.objects.get_for_model(Refund)
    refund_ids = Refund.objects.filter(payment_id=payment_id).values("pk")
    logs = (
        StateLog.objects.filter(
            Q(content_type=payment_type, object_id=payment_id)
            | Q(content_type=refund_type, object_id__in=refund_ids)
        )
        .select_related("by")
        .order_by("timestamp", "id")
    )
    return state_log_rows(
        logs,
        label=lambda log: "payment" if log.content_type_id == payment_type.pk else f"refund {log.object_id}",
    )


def payment_state_summary() -> dict:
    """Per status: count and the oldest updated_at, plus the FSM's transitions."""
    return state_summary(Payment, "status", PaymentStatus.choices)


# --- Read-only, for set-based reconciliation ------------------------------------------
# `.values()` querysets meant to be embedded in reconciliation's SQL (a subquery, or
# `.query.sql_with_params()` in a CTE), so a detector joins payments with the provider's
# records in one statement. Never evaluate them whole; never write through them. The
# column order is part of the contract.


def payments_reconciliation_values():
    """Read-only, for set-based reconciliation: every payment as (id, order_id, status,
    amount, currency, provider_charge_id, refunded_amount, updated_at)."""
    return Payment.objects.order_by().values(
        "id",
        "order_id",
        "status",
        "amount",
        "currency",
        "provider_charge_id",
        "refunded_amount",
        "updated_at",
    )


def refunds_reconciliation_values():
    """Read-only, for set-based reconciliation: every refund as (id, payment_id, status,
    amount, currency, provider_refund_id, created_at)."""
    return Refund.objects.order_by().values(
        "id", "payment_id", "status", "amount", "currency", "provider_refund_id", "created_at"
    )


def ledger_balances_by_currency(
    *, code: str, created_before: datetime | None = None, kept: bool = True
) -> dict[str, Decimal]:
    """Balance (debit positive) of one account per currency, in one grouped query.
    `created_before` counts only transactions posted before that instant (a comparison
    with a provider snapshot taken at that time).

    From the running balance (LedgerBalanceByHour, kept by a trigger with the entries):
    whole hours before `created_before`'s hour, plus that hour's entries (the
    transactions' created_at BRIN index). `kept=False` sums every entry instead (the
    reference the tests compare with)."""
    if not kept:
        entries = LedgerEntry.objects.filter(account__code=code)
        if created_before is not None:
            entries = entries.filter(transaction__created_at__lt=created_before)
        rows = entries.order_by().values("currency").annotate(total=Sum("amount"))
        return {row["currency"]: Decimal(row["total"]) for row in rows}
    balances = LedgerBalanceByHour.objects.filter(account__code=code)
    if created_before is None:
        kept_rows = balances.order_by().values("currency").annotate(total=Sum("amount"))
        return {row["currency"]: Decimal(row["total"]) for row in kept_rows if row["total"] is not None}
    hour = created_before.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    whole = balances.filter(hour__lt=hour).order_by().values_list("currency", "amount")
    tail = (
        LedgerEntry.objects.filter(
            account__code=code, transaction__created_at__gte=hour, transaction__created_at__lt=created_before
        )
        .order_by()
        .values_list("currency", "amount")
    )
    return dict(_grouped_sum(whole.union(tail, all=True)))


def _grouped_sum(rows) -> list[tuple[str, Decimal]]:
    """SUM(amount) GROUP BY currency over a UNION ALL queryset of (currency, amount), in
    the database (one statement)."""
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT u.c, SUM(u.a) FROM ({sql}) u (c, a) GROUP BY u.c", params)  # noqa: S608
        return [(currency, Decimal(total)) for currency, total in cursor.fetchall()]


def ledger_balance_drift() -> list[dict]:
    """The (account, currency, hour) cells whose running balance (LedgerBalanceByHour,
    summed over its shards) differs from a sum of the entries themselves:
    [{account, currency, hour, kept, entries}], empty when they agree. Reads every entry:
    the proof that the trigger held (reconciliation's hourly balance check runs it)."""
    balance = LedgerBalanceByHour._meta.db_table
    entry = LedgerEntry._meta.db_table
    txn = LedgerTransaction._meta.db_table
    account = LedgerAccount._meta.db_table
    sql = (  # table names from the models; no values interpolated
        "SELECT a.code AS account, d.currency, d.hour, d.kept, d.entries FROM ("  # noqa: S608
        "  SELECT COALESCE(k.account_id, e.account_id) AS account_id, COALESCE(k.currency, e.currency) AS currency, "
        "  COALESCE(k.hour, e.hour) AS hour, COALESCE(k.amount, 0) AS kept, COALESCE(e.amount, 0) AS entries "
        f"  FROM (SELECT account_id, currency, hour, SUM(amount) AS amount FROM {balance} GROUP BY 1, 2, 3) k "
        "  FULL JOIN (SELECT e.account_id, e.currency, "
        "    date_bin('1 hour', t.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS hour, SUM(e.amount) AS amount "
        f"    FROM {entry} e JOIN {txn} t ON t.id = e.transaction_id GROUP BY 1, 2, 3) e "
        "  ON e.account_id = k.account_id AND e.currency = k.currency AND e.hour = k.hour"
        f") d JOIN {account} a ON a.id = d.account_id WHERE d.kept <> d.entries ORDER BY 1, 2, 3"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        columns = [col.name for col in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def ledger_currency_imbalances() -> dict[str, Decimal]:
    """Currencies whose entries, over every account, do not sum to zero (a balanced
    ledger has none). One grouped query."""
    rows = LedgerEntry.objects.order_by().values("currency").annotate(total=Sum("amount")).exclude(total=0)
    return {row["currency"]: Decimal(row["total"]) for row in rows}


def webhook_events_for_payment(*, payment_id: int, limit: int = 100) -> list[dict]:
    """The provider's webhook events about a payment (its charge, by charge id or by
    reference = order id, and refunds of that charge), oldest first, as plain dicts for
    an order's case file. Two queries (one with webhook_events_about, when the caller
    holds the payment already); the inbox has no index on the payload, so this scans
    it — fine for one case file, not for lists."""
    payment = Payment.objects.filter(pk=payment_id).values("order_id", "provider_charge_id").first()
    if payment is None:
        return []
    return webhook_events_about(
        order_id=payment["order_id"], charge_id=payment["provider_charge_id"], limit=limit
    )


def webhook_events_about(*, order_id: int, charge_id: str | None, limit: int = 100) -> list[dict]:
    """webhook_events_for_payment for a payment already read (its order id and charge
    id): one query."""
    match = Q(payload__data__object__reference=str(order_id))
    if charge_id:
        match |= Q(payload__data__object__id=charge_id) | Q(payload__data__object__charge=charge_id)
    events = ProviderWebhookEvent.objects.filter(match).order_by("first_seen_at", "id")[:limit]
    return [_webhook_event_row(e) for e in events]


def _webhook_event_row(e: ProviderWebhookEvent) -> dict:
    data = e.payload.get("data") if isinstance(e.payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    return {
        "at": e.first_seen_at,
        "last_seen_at": e.last_seen_at,
        "event_id": e.event_id,
        "event_type": e.event_type,
        "object_id": str(obj.get("id", "")) if isinstance(obj, dict) else "",
        "deliveries": e.deliveries,
        "outcome": e.outcome,
        "note": e.note,
    }


# --- For the invariant checks (monitoring) ----------------------------------------------


def provider_clearing_by_order(*, order_ids: list[int]) -> dict[int, Decimal]:
    """Per order: the balance its payment's postings left in provider_clearing
    (captured minus refunded, what the provider should hold for it). One grouped query."""
    rows = (
        LedgerEntry.objects.filter(
            account__code=LedgerAccountCode.PROVIDER_CLEARING,
            transaction__payment__order_id__in=list(order_ids),
        )
        .order_by()
        .values("transaction__payment__order_id")
        .annotate(total=Sum("amount"))
    )
    return {row["transaction__payment__order_id"]: Decimal(row["total"]) for row in rows}


def payments_without_audit(*, order_ids: list[int]) -> list[int]:
    """Order ids whose payment left `pending` without an audit row for the state it is
    in now (DESIGN §6.8). One query."""
    logs = StateLog.objects.filter(
        content_type=ContentType.objects.get_for_model(Payment),
        object_id=OuterRef("pk"),
        state=OuterRef("status"),
    )
    return list(
        Payment.objects.filter(order_id__in=list(order_ids))
        .exclude(status=PaymentStatus.PENDING)
        .filter(~Exists(logs))
        .order_by("order_id")
        .values_list("order_id", flat=True)
    )


# --- Back-office service levels (how long rows wait in a state) --------------------------------


def payments_waiting(
    *, status: str, since_before=None, exclude_ids=None, limit: int = 50, counted: bool = True
) -> tuple[int | None, list[dict]]:
    """Payments in `status` since their last change (updated_at), oldest first: the count
    and the first `limit` as (id, order_id, amount, currency, since). Two queries."""
    return waiting_in_state(
        Payment.objects.filter(status=status),
        since="updated_at",
        since_before=since_before,
        exclude_ids=exclude_ids,
        limit=limit,
        counted=counted,
        fields=("id", "order_id", "amount", "currency"),
    )


def refunds_waiting(
    *, status: str, since_before=None, exclude_ids=None, limit: int = 50, counted: bool = True
) -> tuple[int | None, list[dict]]:
    """Refunds in `status` since they were asked for (created_at), oldest first: the
    count and the first `limit` as (id, order_id, amount, currency, since). Two queries."""
    return waiting_in_state(
        Refund.objects.filter(status=status).annotate(order_id=F("payment__order_id")),
        since="created_at",
        since_before=since_before,
        exclude_ids=exclude_ids,
        limit=limit,
        counted=counted,
        fields=("id", "order_id", "amount", "currency"),
    )


def payments_and_refunds_waiting(
    *,
    payment_status: str,
    refund_status: str,
    payment_since_before=None,
    refund_since_before=None,
    limit: int = 50,
) -> tuple[list[dict], list[dict]]:
    """payments_waiting and refunds_waiting's rows (counted=False) in one statement:
    the oldest `limit` payments in `payment_status` and refunds in `refund_status`, as
    (id, order_id, amount, currency, since)."""
    payments, refunds = waiting_in_states(
        [
            (lambda: Payment.objects.filter(status=payment_status), "updated_at", payment_since_before),
            (
                lambda: Refund.objects.filter(status=refund_status).annotate(order_id=F("payment__order_id")),
                "created_at",
                refund_since_before,
            ),
        ],
        key=("payments_and_refunds_waiting", str(payment_status), str(refund_status)),
        limit=limit,
        fields=("id", "order_id", "amount", "currency"),
    )
    return payments, refunds


# --- Read model sources (readmodels/ rebuilds and checks its copies from these) ---------


def payments_read_model_rows(
    *,
    updated_before=None,
    updated_from=None,
    order_id_from: int | None = None,
    order_id_before: int | None = None,
    order_ids: list[int] | None = None,
):
    """Every payment's order, status and charge id, as dicts, streamed; optionally only
    those last changed in a range, or of some orders (the read models' drift check)."""
    rows = Payment.objects.order_by("id")
    if updated_before is not None:
        rows = rows.filter(updated_at__lt=updated_before)
    if updated_from is not None:
        # status IN (every status): the (status, updated_at) index serves the range.
        rows = rows.filter(status__in=list(PaymentStatus.values), updated_at__gte=updated_from)
    if order_id_from is not None:
        rows = rows.filter(order_id__gte=order_id_from)
    if order_id_before is not None:
        rows = rows.filter(order_id__lt=order_id_before)
    if order_ids is not None:
        rows = rows.filter(order_id__in=order_ids)
    return rows.values("id", "order_id", "status", "provider_charge_id", "updated_at").iterator(
        chunk_size=2000
    )


def ledger_money_moves(*, created_before=None, created_from=None, kind: str | None = None):
    """Captures and refunds as the ledger recorded them, as dicts, streamed: kind
    (capture|refund), payment_id, refund_id, currency, amount (positive), at. The
    ledger's timestamp is the day the money moved (events schema 2 carry it too)."""
    rows = LedgerTransaction.objects.filter(
        kind__in=[LedgerTransactionKind.CAPTURE, LedgerTransactionKind.REFUND]
    ).order_by("id")
    if created_before is not None:
        rows = rows.filter(created_at__lt=created_before)
    if created_from is not None:
        rows = rows.filter(created_at__gte=created_from)  # ledger_tx_created_brin
    if kind is not None:
        rows = rows.filter(kind=kind)
    for row in rows.values(
        "kind",
        "payment_id",
        "payment__order_id",
        "refund_id",
        "currency",
        "payment__amount",
        "refund__amount",
        "created_at",
    ).iterator(chunk_size=2000):
        yield {
            "kind": row["kind"],
            "payment_id": row["payment_id"],
            "order_id": row["payment__order_id"],
            "refund_id": row["refund_id"],
            "currency": row["currency"],
            "amount": row["refund__amount"]
            if row["kind"] == LedgerTransactionKind.REFUND
            else row["payment__amount"],
            "at": row["created_at"],
        }


def ledger_balances() -> list[dict]:
    """Every account's balance per currency (debit positive), one grouped query."""
    rows = (
        LedgerEntry.objects.order_by("account__code", "currency")
        .values("account__code", "currency")
        .annotate(total=Sum("amount"), entries=Count("id"))
    )
    labels = dict(LedgerAccountCode.choices)
    return [
        {
            "account": r["account__code"],
            "label": labels.get(r["account__code"], r["account__code"]),
            "currency": r["currency"],
            "balance": Decimal(r["total"]),
            "entries": r["entries"],
        }
        for r in rows
    ]
