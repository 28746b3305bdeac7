"""The double-entry ledger: one balanced posting per business event.

Amounts are signed (debit positive, credit negative) and every transaction's entries
sum to zero — checked here and, at commit, by a deferred constraint trigger
(migration 0002). Append-only: a correction is a new adjustment.
"""

from __future__ import annotations

import functools
from collections import Counter
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from core.errors import ConcordError, Conflict
from core.money import quantize
from core.sql import column, insert_do_nothing_sql, insert_rows
from core.transactions import joins_caller

from ..choices import LedgerAccountCode, LedgerTransactionKind
from ..models import LedgerAccount, LedgerEntry, LedgerTransaction
from ._common import require_currency, require_text


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
    return ledger_post_at(
        kind=kind,
        currency=currency,
        entries=entries,
        reference=reference,
        payment_id=payment_id,
        refund_id=refund_id,
        memo=memo,
    )[0]


@joins_caller
def ledger_post_at(
    *,
    kind: str,
    currency: str,
    entries: list[tuple[str, Decimal]],
    reference: str,
    payment_id: int | None = None,
    refund_id: int | None = None,
    memo: str = "",
) -> tuple[int, datetime]:
    """ledger_post, returning the transaction's id and its stored timestamp (the
    payment events carry it: no read-back of the row just written)."""
    if kind not in LedgerTransactionKind.values:
        raise ConcordError(f"Unknown ledger transaction kind {kind!r}.", code="ledger_kind_invalid")
    require_currency(currency)
    require_text(reference, field="reference", code="ledger_reference_invalid")
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

    # The transaction row first, unless its reference was posted already: one
    # statement (INSERT … ON CONFLICT DO NOTHING RETURNING), no read before it. A
    # concurrent poster of the same reference waits for the first to commit, then
    # finds it here. Nothing else is written before this, so a refusal below leaves
    # a caller's transaction usable.
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _transaction_insert_sql(), [kind, currency, payment_id, refund_id, reference, memo, now]
        )
        row = cursor.fetchone()
    if row is None:
        return _repeat(
            reference=reference,
            wanted=wanted,
            kind=kind,
            currency=currency,
            payment_id=payment_id,
            refund_id=refund_id,
        )
    txn_id, created_at = row
    codes = sorted({code for code, _ in wanted})
    # From here on (core.transactions) an error marks a caller's transaction for
    # rollback. The accounts in one read; a missing one (first posting in a
    # currency) is created.
    with transaction.atomic(savepoint=False):
        accounts = _account_ids(codes, currency)
        for code in codes:
            if code not in accounts:
                accounts[code] = LedgerAccount.objects.get_or_create(code=code, currency=currency)[0].pk
        insert_rows(
            [
                LedgerEntry(
                    transaction_id=txn_id, account_id=accounts[code], amount=amount, currency=currency
                )
                for (code, amount), n in wanted.items()
                for _ in range(n)
            ]
        )
    return txn_id, created_at


def _repeat(
    *,
    reference: str,
    wanted: Counter[tuple[str, Decimal]],
    kind: str,
    currency: str,
    payment_id: int | None,
    refund_id: int | None,
) -> tuple[int, datetime]:
    """The reference was posted before: the same posting again is a no-op (its id
    and timestamp), other entries or another subject a Conflict."""
    existing = LedgerTransaction.objects.get(reference=reference)
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
    return existing.pk, existing.created_at


def _account_ids(codes: list[str], currency: str) -> dict[str, int]:
    """The ids of the accounts with these codes in `currency` that exist: the ORM's
    `LedgerAccount.objects.filter(code__in=…, currency=…)` as a statement built once
    per process (issue 16: compiling it cost more CPU than running it)."""
    with connection.cursor() as cursor:
        cursor.execute(_accounts_sql(), [codes, currency])
        return {code: pk for pk, code in cursor.fetchall()}


@functools.cache
def _accounts_sql() -> str:
    table = connection.ops.quote_name(LedgerAccount._meta.db_table)
    pk, code, currency = (column(LedgerAccount, name) for name in ("id", "code", "currency"))
    return f"SELECT {pk}, {code} FROM {table} WHERE {code} = ANY(%s) AND {currency} = %s"  # noqa: S608 (identifiers from the model)


@functools.cache
def _transaction_insert_sql() -> str:
    """Built once per process from the model's metadata (every value a parameter)."""
    fields = ("kind", "currency", "payment", "refund", "reference", "memo", "created_at")
    return (
        insert_do_nothing_sql(LedgerTransaction, fields, ["reference"])
        + f", {column(LedgerTransaction, 'created_at')}"
    )
