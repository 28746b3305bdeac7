"""The ledger's running balance (LedgerBalanceByHour), kept by a statement trigger on the
entries (migration 0008) in the same statement as each posting.

Postings are planted with raw SQL where the point is that no Python path could also
move the balance; the reference is the same selector summing every entry (kept=False).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from payments import selectors, services
from payments.choices import LedgerAccountCode as A
from payments.choices import LedgerTransactionKind as K
from payments.models import LedgerAccount, LedgerBalanceByHour

pytestmark = pytest.mark.django_db

_refs = iter(range(1, 10_000))


def _sql(statement: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _plant(amount: str, created_at: datetime, *, currency: str = "EUR") -> None:
    """A balanced capture-like posting (provider_clearing +, customer_funds -) written with
    raw SQL: its transaction row and both entries in one statement, as a shell could."""
    accounts = {}
    for code in (A.PROVIDER_CLEARING, A.CUSTOMER_FUNDS):
        accounts[code] = LedgerAccount.objects.get_or_create(code=code, currency=currency)[0].pk
    _sql(
        "WITH t AS (INSERT INTO payments_ledgertransaction (kind, currency, reference, memo, created_at) "
        "VALUES ('adjustment', %s, %s, '', %s) RETURNING id) "
        "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount, currency) "
        "SELECT t.id, a.account, a.amount, %s FROM t, (VALUES (%s, %s::numeric), (%s, -%s::numeric)) a (account, amount)",
        [currency, f"planted:{next(_refs)}", created_at, currency,
         accounts[A.PROVIDER_CLEARING], amount, accounts[A.CUSTOMER_FUNDS], amount],
    )  # fmt: skip


def _both(created_before=None, code=A.PROVIDER_CLEARING):
    kept = selectors.ledger_balances_by_currency(code=code, created_before=created_before)
    summed = selectors.ledger_balances_by_currency(code=code, created_before=created_before, kept=False)
    assert kept == summed
    return {currency: str(total) for currency, total in kept.items()}


def test_a_posting_moves_the_balance_in_its_own_statement():
    services.ledger_post(
        kind=K.ADJUSTMENT,
        currency="EUR",
        entries=[(A.PROVIDER_CLEARING, Decimal("7.00")), (A.CUSTOMER_FUNDS, Decimal("-7.00"))],
        reference="adj:1",
    )

    assert sorted(LedgerBalanceByHour.objects.values_list("account__code", "amount")) == [
        (A.CUSTOMER_FUNDS, Decimal("-7.00")),
        (A.PROVIDER_CLEARING, Decimal("7.00")),
    ]
    assert _both() == {"EUR": "7.00"}
    assert _both(code=A.CUSTOMER_FUNDS) == {"EUR": "-7.00"}
    assert selectors.ledger_balance_drift() == []


def test_postings_planted_with_raw_sql_are_in_the_balance_in_every_part_of_the_hour():
    cutoff = datetime(2026, 11, 30, 12, 29, tzinfo=UTC)
    _plant("10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))  # whole hours before: the balance
    _plant("1.00", datetime(2026, 11, 30, 11, 59, 59, 999999, tzinfo=UTC))
    _plant("2.00", datetime(2026, 11, 30, 12, 10, tzinfo=UTC))  # the cutoff's hour: entries
    _plant("4.00", cutoff)  # not before the cutoff
    _plant("8.00", datetime(2026, 11, 30, 12, 29, 30, tzinfo=UTC))
    _plant("16.00", datetime(2026, 11, 30, 3, 0, tzinfo=UTC), currency="USD")

    assert _both(cutoff) == {"EUR": "13.00", "USD": "16.00"}
    assert _both(cutoff + timedelta(hours=1)) == {"EUR": "25.00", "USD": "16.00"}
    assert _both(datetime(2026, 11, 29, 8, 15, tzinfo=UTC)) == {}
    assert _both() == {"EUR": "25.00", "USD": "16.00"}
    assert selectors.ledger_balance_drift() == []


def test_the_postings_of_one_database_transaction_share_one_shard():
    for i in range(3):
        services.ledger_post(
            kind=K.ADJUSTMENT,
            currency="EUR",
            entries=[(A.PROVIDER_CLEARING, Decimal("1.00")), (A.REVENUE, Decimal("-1.00"))],
            reference=f"adj:{i}",
        )

    shards = set(LedgerBalanceByHour.objects.values_list("shard", flat=True))
    assert len(shards) == 1 and 0 <= shards.pop() < 16
    assert LedgerBalanceByHour.objects.get(account__code=A.PROVIDER_CLEARING).amount == Decimal("3.00")


def test_entries_written_behind_the_trigger_s_back_are_found_by_the_drift_check():
    _plant("10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # the balanced check now: no event pending for the ALTER
    _sql("ALTER TABLE payments_ledgerentry DISABLE TRIGGER payments_ledgerbalance_ins")
    _plant("5.00", datetime(2026, 11, 29, 8, 20, tzinfo=UTC))
    _sql("ALTER TABLE payments_ledgerentry ENABLE TRIGGER payments_ledgerbalance_ins")

    assert selectors.ledger_balances_by_currency(code=A.PROVIDER_CLEARING) == {"EUR": Decimal("10.00")}
    hour = datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert selectors.ledger_balance_drift() == [
        {"account": A.CUSTOMER_FUNDS, "currency": "EUR", "hour": hour, "kept": Decimal("-10.00"),
         "entries": Decimal("-15.00")},
        {"account": A.PROVIDER_CLEARING, "currency": "EUR", "hour": hour, "kept": Decimal("10.00"),
         "entries": Decimal("15.00")},
    ]  # fmt: skip


def test_truncate_empties_the_balance():
    _plant("10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # the balanced check now: no event pending for TRUNCATE
    _sql("TRUNCATE payments_ledgerentry")
    assert LedgerBalanceByHour.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_the_balance_from_the_entries_already_there():
    executor = MigrationExecutor(connection)
    executor.migrate([("payments", "0007_ledgertransaction_ledger_tx_created_brin")])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_ledgeraccount (code, currency) VALUES ('provider_clearing', 'EUR'), "
                "('customer_funds', 'EUR')"
            )
            cursor.execute(
                "WITH t AS (INSERT INTO payments_ledgertransaction (kind, currency, reference, memo, created_at) "
                "VALUES ('adjustment', 'EUR', 'old', '', '2026-11-29 08:15+00') RETURNING id) "
                "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount, currency) "
                "SELECT t.id, a.id, CASE a.code WHEN 'provider_clearing' THEN 12.5 ELSE -12.5 END, 'EUR' "
                "FROM t, payments_ledgeraccount a"
            )
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("payments", "0008_ledger_balance_by_hour")])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert _both() == {"EUR": "12.50"}
    assert selectors.ledger_balance_drift() == []
    _plant("1.00", datetime(2026, 11, 29, 8, 50, tzinfo=UTC))  # the trigger took over
    assert _both() == {"EUR": "13.50"}
