"""Upsert and cursor logic of the provider-records sync.

The provider here is an in-process list of the client's own ProviderCharge/ProviderRefund
dataclasses (a pure data source), so the created_gte each pull asks for can be asserted
exactly; the end-to-end pull through the real sandbox is in test_provider_sync_sandbox.py.
"""

from decimal import Decimal

import pytest

from payments.provider import ProviderCharge as PC
from payments.provider import ProviderRefund as PR
from reconciliation.models import ProviderCharge, ProviderRefund, SyncCursor
from reconciliation.services import provider_records_sync

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000


class ListedProvider:
    """Answers iter_* from lists, the way the provider filters them, and records each call."""

    def __init__(self, charges=(), refunds=()):
        self.charges = list(charges)
        self.refunds = list(refunds)
        self.calls: list[tuple[str, int | None]] = []

    def iter_charges(self, *, created_gte=None, reference=None):
        self.calls.append(("charges", created_gte))
        for c in sorted(self.charges, key=lambda c: (c.created, c.id)):
            if (created_gte is None or c.created >= created_gte) and (
                reference is None or c.reference == reference
            ):
                yield c

    def iter_refunds(self, *, created_gte=None, charge=None):
        self.calls.append(("refunds", created_gte))
        for r in sorted(self.refunds, key=lambda r: (r.created, r.id)):
            if (created_gte is None or r.created >= created_gte) and (charge is None or r.charge == charge):
                yield r


def charge(n, created, *, reference="1", amount=2500, status="succeeded", refunded=0, currency="eur"):
    return PC(
        id=f"ch_{n}", status=status, failure_code=None if status == "succeeded" else "card_declined",
        amount=amount, currency=currency, reference=reference, created=created, amount_refunded=refunded,
    )  # fmt: skip


def test_first_sync_stores_every_record_with_money_and_provider_time():
    provider = ListedProvider(
        [charge(1, T0, amount=1999), charge(2, T0 + 5, status="failed")],
        [PR(id="re_1", charge="ch_1", amount=500, currency="eur", status="succeeded", created=T0 + 9)],
    )

    result = provider_records_sync(client=provider)

    assert (result.charges.fetched, result.charges.created) == (2, 2)
    assert (result.refunds.fetched, result.refunds.created) == (1, 1)
    stored = ProviderCharge.objects.get(provider_id="ch_1")
    assert stored.amount == Decimal("19.99")
    assert stored.amount_minor == 1999
    assert stored.currency == "EUR"
    assert stored.reference == "1"
    assert stored.created.timestamp() == T0
    assert ProviderCharge.objects.get(provider_id="ch_2").failure_code == "card_declined"
    refund = ProviderRefund.objects.get()
    assert (refund.charge_provider_id, refund.amount) == ("ch_1", Decimal("5.00"))
    assert SyncCursor.objects.get(kind="charge").last_created == T0 + 5
    assert SyncCursor.objects.get(kind="charge").last_id == "ch_2"
    assert SyncCursor.objects.get(kind="refund").last_created == T0 + 9


def test_sync_again_is_idempotent_and_keeps_first_seen():
    provider = ListedProvider([charge(1, T0), charge(2, T0 + 1)])
    provider_records_sync(client=provider)
    first_seen = dict(ProviderCharge.objects.values_list("provider_id", "first_seen_at"))

    again = provider_records_sync(client=provider)

    assert again.charges.created == 0
    assert ProviderCharge.objects.count() == 2
    assert dict(ProviderCharge.objects.values_list("provider_id", "first_seen_at")) == first_seen


def test_second_sync_pulls_from_the_cursor_minus_the_overlap(settings):
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SYNC_OVERLAP_SECONDS": 60}
    provider = ListedProvider([charge(1, T0), charge(2, T0 + 100)])
    provider_records_sync(client=provider)
    assert provider.calls[0] == ("charges", None)

    # Old charges the overlap no longer covers are not fetched again; a new one is.
    provider.charges.append(charge(3, T0 + 130))
    provider.calls.clear()
    result = provider_records_sync(client=provider)

    assert provider.calls[0] == ("charges", T0 + 100 - 60)
    assert result.charges.fetched == 2  # ch_2 again (inside the overlap) and ch_3
    assert result.charges.created == 1
    assert SyncCursor.objects.get(kind="charge").last_created == T0 + 130


def test_a_late_committed_charge_inside_the_overlap_is_caught():
    provider = ListedProvider([charge(1, T0 + 100)])
    provider_records_sync(client=provider)
    # Committed after the pull but stamped earlier than the cursor (slow request).
    provider.charges.append(charge(2, T0 + 90))

    provider_records_sync(client=provider)

    assert ProviderCharge.objects.filter(provider_id="ch_2").exists()
    assert SyncCursor.objects.get(kind="charge").last_created == T0 + 100  # never moves back


def test_provider_changes_are_applied_to_the_copy_not_duplicated():
    provider = ListedProvider([charge(1, T0)])
    provider_records_sync(client=provider)
    provider.charges = [charge(1, T0, refunded=2500)]

    provider_records_sync(client=provider)

    stored = ProviderCharge.objects.get()
    assert stored.amount_refunded == Decimal("25.00")
    assert stored.last_synced_at > stored.first_seen_at


def test_batches_larger_than_the_batch_size(settings):
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SYNC_BATCH_SIZE": 7}
    provider = ListedProvider([charge(n, T0 + n, reference=str(n)) for n in range(30)])
    seen = []

    result = provider_records_sync(client=provider, progress=seen.append)

    assert result.charges.created == 30
    assert seen == [7, 7, 7, 7, 2]
    assert ProviderCharge.objects.count() == 30


def test_a_pull_that_fails_half_way_keeps_what_it_stored_and_does_not_move_the_cursor(settings):
    from payments.provider import ProviderUnavailable

    settings.RECONCILIATION = {**settings.RECONCILIATION, "SYNC_BATCH_SIZE": 2}

    class Breaks(ListedProvider):
        def iter_charges(self, **kwargs):
            for i, c in enumerate(super().iter_charges(**kwargs)):
                if i == 3:
                    raise ProviderUnavailable("connection reset")
                yield c

    with pytest.raises(ProviderUnavailable):
        provider_records_sync(client=Breaks([charge(n, T0 + n) for n in range(5)]))

    assert ProviderCharge.objects.count() == 2  # the first full batch committed
    assert not SyncCursor.objects.filter(kind="charge", last_created__isnull=False).exists()
