"""The client against the real sandbox (a subprocess): the failure modes of DESIGN §3."""

import datetime

import pytest

from payments.provider import Outcome, ProviderClient

pytestmark = pytest.mark.slow


def _charge(client, *, reference="41", key="41:charge", payment_method="pm_card_ok", amount=2500):
    return client.create_charge(
        amount=amount, currency="EUR", payment_method=payment_method, reference=reference, idempotency_key=key
    )


def test_from_settings_reaches_the_sandbox(psp):
    with ProviderClient.from_settings() as client:
        result = _charge(client)

    assert result.outcome is Outcome.SUCCEEDED
    assert result.charge.reference == "41" and result.charge.id.startswith("ch_")


@pytest.mark.parametrize(
    ("payment_method", "failure_code"),
    [("pm_card_declined", "card_declined"), ("pm_card_insufficient_funds", "insufficient_funds")],
)
def test_declines_are_permanent_with_the_provider_code(psp, payment_method, failure_code):
    result = _charge(psp.client(), payment_method=payment_method)

    assert result.outcome is Outcome.DECLINED
    assert result.failure_code == failure_code
    assert result.charge.status == "failed"


def test_timeout_after_commit_is_unknown_and_the_retry_with_the_same_key_finds_the_charge(psp):
    # given: the provider charges, then answers after the client gave up
    psp.set_faults(timeout_after_commit_rate=1, timeout_seconds=2)
    client = psp.client(read_timeout=0.5)

    # when
    first = _charge(client, reference="77", key="77:charge")

    # then: unknown, yet the customer was charged
    assert first.outcome is Outcome.UNKNOWN
    assert first.charge is None and first.http_status is None
    found = client.list_charges(reference="77").data
    assert len(found) == 1
    psp.clear_faults()
    retry = _charge(client, reference="77", key="77:charge")
    assert retry.outcome is Outcome.SUCCEEDED
    assert retry.charge.id == found[0].id
    assert [c.id for c in client.iter_charges(reference="77")] == [found[0].id]


def test_error_after_commit_is_transient_and_the_retry_with_the_same_key_finds_the_charge(psp):
    psp.set_faults(error_after_commit_rate=1)
    client = psp.client()

    first = _charge(client, reference="78", key="78:charge")

    assert first.outcome is Outcome.TRANSIENT and first.http_status == 500
    psp.clear_faults()
    retry = _charge(client, reference="78", key="78:charge")
    assert retry.outcome is Outcome.SUCCEEDED
    assert [c.id for c in client.iter_charges(reference="78")] == [retry.charge.id]


def test_error_before_commit_is_transient_and_charges_nothing(psp):
    psp.set_faults(error_rate=1)
    client = psp.client()

    result = _charge(client, reference="79")

    assert result.outcome is Outcome.TRANSIENT
    psp.clear_faults()
    assert client.list_charges(reference="79").data == []


def test_a_provider_that_is_down_is_transient():
    client = ProviderClient(base_url="http://127.0.0.1:9", api_key="k", connect_timeout=0.5, read_timeout=0.5)

    result = _charge(client)

    assert result.outcome is Outcome.TRANSIENT and result.http_status is None


def test_a_wrong_api_key_is_transient_not_a_decline(psp):
    client = ProviderClient(base_url=psp.base_url, api_key="sk_wrong", connect_timeout=1, read_timeout=1)

    result = _charge(client)

    assert result.outcome is Outcome.TRANSIENT and result.http_status == 401


def test_refunds_add_up_and_an_excess_is_declined(psp):
    client = psp.client()
    charge = _charge(client, amount=1000).charge

    first = client.create_refund(charge_id=charge.id, amount=400, idempotency_key="r1")
    replay = client.create_refund(charge_id=charge.id, amount=400, idempotency_key="r1")
    second = client.create_refund(charge_id=charge.id, amount=600, idempotency_key="r2")
    excess = client.create_refund(charge_id=charge.id, amount=1, idempotency_key="r3")

    assert (first.outcome, second.outcome) == (Outcome.SUCCEEDED, Outcome.SUCCEEDED)
    assert replay.refund == first.refund
    assert excess.outcome is Outcome.DECLINED and excess.failure_code == "charge_already_refunded"
    assert client.get_charge(charge.id).amount_refunded == 1000
    assert [r.amount for r in client.iter_refunds(charge=charge.id)] == [400, 600]


def test_get_charge_and_pagination(psp):
    client = psp.client()
    ids = [_charge(client, reference=f"p{n}", key=f"p{n}").charge.id for n in range(3)]

    first_page = client.list_charges(limit=2)
    second_page = client.list_charges(limit=2, starting_after=first_page.data[-1].id)

    assert [c.id for c in first_page.data] == ids[:2] and first_page.has_more
    assert [c.id for c in second_page.data] == ids[2:] and not second_page.has_more
    assert client.get_charge(ids[0]).id == ids[0]
    assert client.get_charge("ch_000000000000000000000000") is None


def test_settlement(psp):
    client = psp.client()
    charge = _charge(client, amount=1000).charge
    client.create_refund(charge_id=charge.id, amount=300, idempotency_key="s1")
    day = datetime.datetime.fromtimestamp(charge.created, tz=datetime.UTC).date()

    report = client.settlement(date=day)

    assert report["by_currency"][0]["net"] == 700
