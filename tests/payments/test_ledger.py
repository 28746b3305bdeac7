"""The double-entry ledger: balanced by ledger_post, and at commit by the database."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, transaction

from core.errors import ConcordError, Conflict
from payments import selectors, services
from payments.choices import LedgerAccountCode as A
from payments.choices import LedgerTransactionKind as K
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

from .helpers import payment_in_state


def _clearing(currency="EUR") -> Decimal:
    return selectors.ledger_account_balance(code=A.PROVIDER_CLEARING, currency=currency)


@pytest.mark.django_db
def test_unbalanced_posting_is_rejected_and_writes_nothing():
    with pytest.raises(ConcordError) as excinfo:
        services.ledger_post(
            kind=K.ADJUSTMENT,
            currency="EUR",
            entries=[(A.PROVIDER_CLEARING, Decimal("10.00")), (A.REVENUE, Decimal("-9.99"))],
            reference="adj:unbalanced",
        )

    assert excinfo.value.code == "ledger_unbalanced"
    assert LedgerTransaction.objects.count() == 0
    assert LedgerEntry.objects.count() == 0
    assert LedgerAccount.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([(A.REVENUE, Decimal("1.00"))], "ledger_entries_invalid"),
        ([(A.REVENUE, Decimal("1.00")), ("cash_in_mattress", Decimal("-1.00"))], "ledger_account_unknown"),
        ([(A.REVENUE, Decimal("1.001")), (A.CUSTOMER_FUNDS, Decimal("-1.001"))], "ledger_entries_invalid"),
        ([(A.REVENUE, Decimal("0")), (A.CUSTOMER_FUNDS, Decimal("0"))], "ledger_entries_invalid"),
        ([(A.REVENUE, 1.0), (A.CUSTOMER_FUNDS, -1.0)], "ledger_entries_invalid"),
    ],
)
def test_malformed_postings_are_rejected(entries, code):
    with pytest.raises(ConcordError) as excinfo:
        services.ledger_post(kind=K.ADJUSTMENT, currency="EUR", entries=entries, reference="adj:bad")
    assert excinfo.value.code == code
    assert LedgerTransaction.objects.count() == 0


@pytest.mark.django_db
def test_posting_the_same_reference_twice_posts_once():
    entries = [(A.REVENUE, Decimal("-3.00")), (A.CUSTOMER_FUNDS, Decimal("3.00"))]

    first = services.ledger_post(kind=K.ADJUSTMENT, currency="EUR", entries=entries, reference="adj:1")
    again = services.ledger_post(kind=K.ADJUSTMENT, currency="EUR", entries=entries, reference="adj:1")

    assert first == again
    assert LedgerTransaction.objects.count() == 1
    assert LedgerEntry.objects.count() == 2
    with pytest.raises(Conflict) as excinfo:
        services.ledger_post(
            kind=K.ADJUSTMENT,
            currency="EUR",
            entries=[(A.REVENUE, Decimal("-4.00")), (A.CUSTOMER_FUNDS, Decimal("4.00"))],
            reference="adj:1",
        )
    assert excinfo.value.code == "ledger_reference_reused"


@pytest.mark.django_db
def test_capture_partial_and_full_refunds_keep_the_ledger_balanced():
    payment = payment_in_state("captured", amount=Decimal("50.00"))
    assert _clearing() == Decimal("50.00")
    assert selectors.ledger_account_balance(code=A.CUSTOMER_FUNDS, currency="EUR") == Decimal("-50.00")

    refunded = Decimal(0)
    for amount in (Decimal("5.00"), Decimal("12.50"), Decimal("32.50")):
        refund = services.refund_create(payment_id=payment.pk, amount=amount, reason="r")
        services.refund_succeed(refund_id=refund.id, provider_refund_id=f"re_{refund.id}", reason="ok")
        refunded += amount
        assert _clearing() == Decimal("50.00") - refunded
        assert selectors.ledger_unbalanced_transactions() == []

    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert _clearing() == Decimal("0.00")
    assert selectors.ledger_account_balance(code=A.CUSTOMER_FUNDS, currency="EUR") == Decimal("0.00")
    kinds = list(payment.ledger_transactions.order_by("id").values_list("kind", flat=True))
    assert kinds == [K.CAPTURE, K.REFUND, K.REFUND, K.REFUND]


@pytest.mark.django_db
def test_balances_are_per_currency():
    payment_in_state("captured", amount=Decimal("10.00"))
    services.ledger_post(
        kind=K.ADJUSTMENT,
        currency="USD",
        entries=[(A.PROVIDER_CLEARING, Decimal("7.00")), (A.CUSTOMER_FUNDS, Decimal("-7.00"))],
        reference="adj:usd",
    )
    assert _clearing("EUR") == Decimal("10.00")
    assert _clearing("USD") == Decimal("7.00")
    assert _clearing("GBP") == Decimal("0")


@pytest.mark.django_db
def test_the_ledger_is_append_only():
    payment_in_state("captured")
    entry = LedgerEntry.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=Decimal("1.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerTransaction.objects.all().delete()


class _RollBack(Exception):
    pass


def _insert_raw(reference, entries, *, currency="EUR", roll_back_with_check=None):
    """Insert a ledger transaction bypassing ledger_post, in its own atomic block
    (a real COMMIT in transaction=True tests). `entries` are (account, amount, currency).
    With roll_back_with_check, call it inside the block, then roll the block back."""
    with transaction.atomic():
        txn = LedgerTransaction.objects.create(kind=K.ADJUSTMENT, currency=currency, reference=reference)
        for account, amount, entry_currency in entries:
            LedgerEntry.objects.create(
                transaction=txn, account=account, amount=amount, currency=entry_currency
            )
        # Reaching here means every INSERT succeeded: the balance check is deferred.
        if roll_back_with_check is not None:
            roll_back_with_check(txn.pk)
            raise _RollBack
    return txn.pk


@pytest.mark.django_db
def test_unbalanced_selector_finds_bad_rows_before_the_commit_time_trigger():
    """The selector is reconciliation's check:
    before COMMIT the deferred trigger has not fired, so the selector must see the row.
    The savepoint is rolled back, which also drops the queued trigger event (Django's
    test teardown would otherwise fire it with SET CONSTRAINTS ALL IMMEDIATE)."""
    account = LedgerAccount.objects.create(code=A.REVENUE, currency="EUR")
    seen = []

    def check(txn_id):
        seen.append(selectors.ledger_unbalanced_transactions() == [txn_id])

    with pytest.raises(_RollBack):
        _insert_raw("raw:sel", [(account, Decimal("1.00"), "EUR")], roll_back_with_check=check)

    assert seen == [True]


@pytest.mark.django_db(transaction=True)
def test_raw_unbalanced_insert_fails_at_commit():
    # given: accounts, committed outside the failing transaction
    revenue = LedgerAccount.objects.create(code=A.REVENUE, currency="EUR")
    funds = LedgerAccount.objects.create(code=A.CUSTOMER_FUNDS, currency="EUR")

    # when: entries that do not sum to zero are inserted bypassing ledger_post
    with pytest.raises((IntegrityError, DatabaseError)) as excinfo:
        _insert_raw("raw:1", [(revenue, Decimal("10.00"), "EUR"), (funds, Decimal("-9.00"), "EUR")])

    # then: COMMIT raised and nothing was kept
    assert "unbalanced" in str(excinfo.value)
    assert LedgerTransaction.objects.count() == 0
    assert LedgerEntry.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_raw_single_entry_and_mixed_currency_transactions_fail_at_commit():
    eur = LedgerAccount.objects.create(code=A.REVENUE, currency="EUR")
    usd = LedgerAccount.objects.create(code=A.CUSTOMER_FUNDS, currency="USD")

    with pytest.raises(IntegrityError, match="at least two"):
        _insert_raw("raw:empty", [])
    with pytest.raises(IntegrityError, match="at least two"):
        _insert_raw("raw:single", [(eur, Decimal("10.00"), "EUR")])
    with pytest.raises(IntegrityError, match="mixes currencies"):
        _insert_raw("raw:mixed", [(eur, Decimal("10.00"), "EUR"), (usd, Decimal("-10.00"), "USD")])

    assert LedgerTransaction.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_balanced_raw_insert_commits():
    revenue = LedgerAccount.objects.create(code=A.REVENUE, currency="EUR")
    funds = LedgerAccount.objects.create(code=A.CUSTOMER_FUNDS, currency="EUR")

    txn_id = _insert_raw("raw:ok", [(revenue, Decimal("10.00"), "EUR"), (funds, Decimal("-10.00"), "EUR")])

    assert LedgerTransaction.objects.filter(pk=txn_id).exists()
    assert selectors.ledger_unbalanced_transactions() == []
