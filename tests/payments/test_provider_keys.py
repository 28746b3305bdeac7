"""Provider idempotency keys are unique by construction (issue 13, item 4).

The charge key used to be "<payment id>:charge": a Concord database recreated (or
restored) against a provider account that had already seen payment 1 replayed that
old charge to the new payment 1, and its first checkout failed. Keys are now random,
stored on the payment / refund when it is created.
"""

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from payments import services
from payments.models import Payment, Refund

pytestmark = pytest.mark.django_db


def _new_payment(order_id=1, amount=Decimal("25.00")):
    return services.payment_create(
        order_id=order_id, amount=amount, currency="EUR", payment_method="pm_card_ok"
    )


def test_a_fresh_database_against_a_provider_that_saw_order_1_charges_the_new_order(psp):
    payment = _new_payment()
    # An earlier Concord database charged its own payment 1 (order 1, another amount)
    # with the key the old scheme derived from the id.
    earlier = psp.client().create_charge(
        amount=9900, currency="EUR", payment_method="pm_card_ok", reference="1",
        idempotency_key=f"{payment.id}:charge",
    )  # fmt: skip
    assert earlier.charge is not None

    outcome = services.payment_charge(payment_id=payment.id)

    assert outcome.outcome == "succeeded", outcome.error
    captured = Payment.objects.get(pk=payment.id)
    assert captured.status == "captured" and captured.provider_charge_id != earlier.charge.id
    amounts = sorted(c.amount for c in psp.client().iter_charges(reference="1"))
    assert amounts == [2500, 9900]


def test_a_refund_key_an_earlier_database_used_refunds_this_payment(psp):
    """A saga's caller key ("saga:1:…") restarts with the run ids of a fresh database;
    the key sent to the provider does not."""
    old = psp.client().create_charge(
        amount=4000, currency="EUR", payment_method="pm_card_ok", reference="77", idempotency_key="old-charge"
    )
    psp.client().create_refund(charge_id=old.charge.id, amount=4000, idempotency_key="saga:1:charge_payment")
    payment = _new_payment()
    assert services.payment_charge(payment_id=payment.id).outcome == "succeeded"

    outcome = services.payment_refund_through_provider(
        payment_id=payment.id, amount=Decimal("10.00"), reason="saga compensation",
        idempotency_key="saga:1:charge_payment",
    )  # fmt: skip

    assert outcome.outcome == "succeeded", outcome.error
    refund = Refund.objects.get(pk=outcome.refund.id)
    assert refund.idempotency_key == "saga:1:charge_payment" and refund.provider_key != refund.idempotency_key
    [at_provider] = list(
        psp.client().iter_refunds(charge=Payment.objects.get(pk=payment.id).provider_charge_id)
    )
    assert (at_provider.id, at_provider.amount) == (refund.provider_refund_id, 1000)


def test_keys_are_random_and_fixed_at_creation():
    first, second = _new_payment(1), _new_payment(2)
    services.payment_capture(payment_id=first.id, provider_charge_id="ch_a", reason="test")
    refund = services.refund_create(payment_id=first.id, amount=Decimal("1.00"), reason="test")

    keys = {first.charge_idempotency_key, second.charge_idempotency_key, Refund.objects.get().provider_key}
    assert len(keys) == 3
    assert Payment.objects.get(pk=first.id).provider_key == first.charge_idempotency_key
    assert uuid.UUID(first.charge_idempotency_key).version == 4
    assert refund.idempotency_key != Refund.objects.get().provider_key


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_key_existing_rows_already_sent():
    """A payment or refund pending before the upgrade may be retried: its retry must
    replay at the provider, so the backfill is the key it sent, not a new one."""
    executor = MigrationExecutor(connection)
    before = [("payments", "0005_provider_attempts_for_charges_without_payment")]
    after = [("payments", "0006_random_provider_keys")]
    executor.migrate(before)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_payment (order_id, amount, currency, payment_method, status, "
                "failure_code, last_error, refunded_amount, created_at, updated_at) VALUES "
                "(5, 10, 'EUR', 'pm_card_ok', 'captured', '', '', 0, now(), now()) RETURNING id"
            )
            payment_id = cursor.fetchone()[0]
            cursor.execute(
                "INSERT INTO payments_refund (payment_id, amount, currency, status, idempotency_key, reason, "
                "failure_code, created_at, updated_at) VALUES (%s, 1, 'EUR', 'pending', %s, '', '', now(), now())",
                [payment_id, f"{payment_id}:refund:1"],
            )
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert Payment.objects.get(order_id=5).charge_idempotency_key == f"{payment_id}:charge"
    assert Refund.objects.get(payment_id=payment_id).provider_key == f"{payment_id}:refund:1"
    assert len(_new_payment(6).charge_idempotency_key) == 36
