"""clearing_mismatch's running balance of the provider's charges (ProviderNetByHour).

The balance is kept by statement triggers on reconciliation_providercharge (migration
0009), so it moves in the same statement as any write of the charges — the sync's
upserts, the ORM, a raw INSERT. These tests plant rows with raw SQL (no Python path that
could also update the balance), compare the detector's provider net with a sum over the
charges themselves, and prove the consistency check finds a balance the triggers did not
keep (a trigger disabled, a balance row edited): `reconcile --verify-balances` and the
hourly beat task, which keep a read_model_drift incident open while they differ.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from reconciliation.detectors import detector_get
from reconciliation.detectors.base import DetectionContext
from reconciliation.models import Incident, ProviderNetByHour, ProviderOrderCaptures
from reconciliation.selectors import provider_captures_drift, provider_net_drift
from reconciliation.tasks import verify_balances

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)  # cutoff 12:29 with SETTLE_SECONDS = 60


@pytest.fixture(autouse=True)
def _settle_one_minute(settings):
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SETTLE_SECONDS": 60}


def _plant(
    provider_id: str,
    amount: str,
    created: datetime,
    *,
    status: str = "succeeded",
    currency: str = "EUR",
    order_id: int | None = None,
    refunded_minor: int = 0,
):
    """A charge row written straight into the table, as a shell or a bug would."""
    minor = int(Decimal(amount) * 100)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO reconciliation_providercharge (provider_id, reference, order_id, amount_minor, amount, "
            "currency, status, amount_refunded_minor, amount_refunded, created, first_seen_at, last_synced_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s / 100.0, %s, now(), now())",
            [provider_id, str(order_id or "planted"), order_id, minor, amount, currency, status,
             refunded_minor, refunded_minor, created],
        )  # fmt: skip


def _open_charges() -> dict[int, int]:
    return {r.order_id: r.open_charges for r in ProviderOrderCaptures.objects.all() if r.open_charges}


def _sql(statement: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _provider_net(now: datetime = NOW) -> dict[str, str]:
    findings = detector_get("clearing_mismatch").find(DetectionContext(now=now))
    return {f.currency: f.details["provider_net"] for f in findings}


def _summed(now: datetime = NOW) -> dict[str, str]:
    """The provider net as the detector computed it before the balance: every charge."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT currency, SUM(amount) FROM reconciliation_providercharge "
            "WHERE status = 'succeeded' AND created < %s GROUP BY currency",
            [now - timedelta(seconds=60)],
        )
        return {currency: str(net) for currency, net in cursor.fetchall() if net != 0}


def _kept() -> dict[tuple[str, datetime], Decimal]:
    return {(r.currency, r.hour): r.net for r in ProviderNetByHour.objects.all() if r.net != 0}


def test_a_charge_planted_with_raw_sql_is_found_by_the_detector_in_every_part_of_the_hour(settings):
    _plant("ch_old", "10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))  # a whole hour before: the balance
    _plant("ch_edge", "1.00", datetime(2026, 11, 30, 11, 59, 59, 999999, tzinfo=UTC))  # last instant of 11h
    _plant("ch_tail", "2.00", datetime(2026, 11, 30, 12, 10, tzinfo=UTC))  # the cutoff's own hour: rows
    _plant("ch_at_cutoff", "4.00", datetime(2026, 11, 30, 12, 29, tzinfo=UTC))  # not settled
    _plant("ch_late", "8.00", datetime(2026, 11, 30, 12, 29, 30, tzinfo=UTC))  # not settled
    _plant("ch_failed", "16.00", datetime(2026, 11, 29, 8, 20, tzinfo=UTC), status="failed")
    _plant("ch_usd", "32.00", datetime(2026, 11, 30, 3, 0, tzinfo=UTC), currency="USD")

    assert _provider_net() == _summed() == {"EUR": "13.00", "USD": "32.00"}
    settings.RECONCILIATION = {**settings.RECONCILIATION, "KEPT_BALANCES": False}
    assert _provider_net() == {"EUR": "13.00", "USD": "32.00"}  # the detector summing every charge
    settings.RECONCILIATION = {**settings.RECONCILIATION, "KEPT_BALANCES": True}
    # the next hour the tail charge is in the balance; the late ones are settled
    later = NOW + timedelta(hours=1)
    assert _provider_net(later) == _summed(later) == {"EUR": "25.00", "USD": "32.00"}
    assert _kept() == {
        ("EUR", datetime(2026, 11, 29, 8, tzinfo=UTC)): Decimal("10.00"),
        ("EUR", datetime(2026, 11, 30, 11, tzinfo=UTC)): Decimal("1.00"),
        ("EUR", datetime(2026, 11, 30, 12, tzinfo=UTC)): Decimal("14.00"),
        ("USD", datetime(2026, 11, 30, 3, tzinfo=UTC)): Decimal("32.00"),
    }
    assert provider_net_drift() == []


def test_the_hour_is_utc_whatever_the_session_time_zone():
    _sql("SET LOCAL TIME ZONE 'Asia/Kolkata'")  # +05:30: a local hour is not a UTC hour
    _plant("ch_1", "5.00", datetime(2026, 11, 30, 11, 45, tzinfo=UTC))
    _sql("SET LOCAL TIME ZONE 'UTC'")

    assert _kept() == {("EUR", datetime(2026, 11, 30, 11, tzinfo=UTC)): Decimal("5.00")}


def test_updates_deletes_and_truncate_move_the_balance():
    created = datetime(2026, 11, 29, 8, 15, tzinfo=UTC)
    _plant("ch_1", "10.00", created, status="pending")
    _plant("ch_2", "20.00", created)
    assert _provider_net() == _summed() == {"EUR": "20.00"}

    _sql("UPDATE reconciliation_providercharge SET status = 'succeeded' WHERE provider_id = 'ch_1'")
    assert _provider_net() == _summed() == {"EUR": "30.00"}
    _sql(
        "UPDATE reconciliation_providercharge SET amount = 12.50, currency = 'USD' WHERE provider_id = 'ch_1'"
    )
    assert _provider_net() == _summed() == {"EUR": "20.00", "USD": "12.50"}
    _sql("UPDATE reconciliation_providercharge SET created = created - interval '2 days'")
    assert _provider_net() == _summed() == {"EUR": "20.00", "USD": "12.50"}
    assert provider_net_drift() == []
    _sql("DELETE FROM reconciliation_providercharge WHERE provider_id = 'ch_2'")
    assert _provider_net() == _summed() == {"USD": "12.50"}
    assert provider_net_drift() == []

    _sql("TRUNCATE reconciliation_providercharge")
    assert _provider_net() == _summed() == {}
    assert ProviderNetByHour.objects.count() == 0


def test_an_update_that_keeps_every_amount_writes_no_balance_row():
    created = datetime(2026, 11, 29, 8, 15, tzinfo=UTC)
    _plant("ch_1", "10.00", created)
    _sql("DELETE FROM reconciliation_providernetbyhour")  # what a re-stamp would re-create

    _sql("UPDATE reconciliation_providercharge SET last_synced_at = now()")

    assert ProviderNetByHour.objects.count() == 0


def test_the_sync_s_upsert_keeps_the_balance(psp, shop):
    from reconciliation.services import provider_records_sync

    client = psp.client()
    shop.checkout(client)
    charge = client.create_charge(
        amount=700, currency="EUR", payment_method="pm_card_ok", reference="no-order", idempotency_key="x"
    ).charge
    client.create_refund(charge_id=charge.id, amount=700, idempotency_key="undo")
    provider_records_sync()
    provider_records_sync()  # the upsert's UPDATE of rows already there

    assert provider_net_drift() == []
    assert sum(r.net for r in ProviderNetByHour.objects.all()) == Decimal("32.00")


def test_a_charge_written_behind_the_triggers_back_is_found_by_the_consistency_check():
    """The detector trusts the balance: with its trigger disabled, a planted charge is not
    in the provider net. The check (`reconcile --verify-balances`) finds the hour."""
    created = datetime(2026, 11, 29, 8, 15, tzinfo=UTC)
    _plant("ch_1", "10.00", created)
    _sql("ALTER TABLE reconciliation_providercharge DISABLE TRIGGER reconciliation_providernet_ins")
    _plant("ch_2", "5.00", created)
    _sql("ALTER TABLE reconciliation_providercharge ENABLE TRIGGER reconciliation_providernet_ins")

    assert _provider_net() == {"EUR": "10.00"} != _summed()
    assert provider_net_drift() == [
        {"currency": "EUR", "hour": datetime(2026, 11, 29, 8, tzinfo=UTC), "kept": Decimal("10.00"),
         "charges": Decimal("15.00")}
    ]  # fmt: skip
    out = io.StringIO()
    with pytest.raises(CommandError, match="'provider_net_by_hour': 1"):
        call_command("reconcile", "--verify-balances", stdout=out)
    assert (
        "provider_net_by_hour: currency EUR, hour 2026-11-29T08:00:00+00:00, kept 10.00, charges 15.00"
        in out.getvalue()
    )


def test_an_edited_balance_row_opens_a_drift_incident_until_it_agrees_again():
    _plant("ch_1", "10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))
    out = io.StringIO()
    call_command("reconcile", "--verify-balances", stdout=out)
    assert "balances match their rows" in out.getvalue()
    ProviderNetByHour.objects.update(net=Decimal("9.00"))

    assert verify_balances.apply().get() == 1

    incident = Incident.objects.get(type="read_model_drift")
    assert (incident.fingerprint, incident.state, incident.details["first"]) == (
        "read_model_drift:provider_net_by_hour", "open",
        [{"currency": "EUR", "hour": "2026-11-29T08:00:00+00:00", "kept": "9.00", "charges": "10.00"}],
    )  # fmt: skip
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("reconcile", "--verify-balances", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {
        "provider_net_by_hour": incident.details["first"],
        "provider_order_captures": [],
        "ledger_balance_by_hour": [],
    }
    assert Incident.objects.filter(type="read_model_drift").count() == 1

    ProviderNetByHour.objects.update(net=Decimal("10.00"))
    assert verify_balances.apply().get() == 0
    assert Incident.objects.get(pk=incident.pk).state == "resolved"


def test_beat_verifies_the_balance_every_hour(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["reconciliation-verify-balances"]
    assert entry["task"] == verify_balances.name == "reconciliation.verify_balances"
    assert entry["schedule"] == settings.RECONCILE_VERIFY_BALANCES_INTERVAL == 3600


@pytest.mark.django_db(transaction=True)
def test_the_migrations_backfill_both_from_the_charges_already_there():
    executor = MigrationExecutor(connection)
    executor.migrate([("reconciliation", "0008_live_incident_type_index")])
    try:
        _plant("ch_1", "10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))
        _plant("ch_2", "2.50", datetime(2026, 11, 29, 8, 45, tzinfo=UTC))
        _plant("ch_3", "7.00", datetime(2026, 11, 29, 9, 0, tzinfo=UTC), status="failed", order_id=5)
        _plant("ch_5", "7.00", datetime(2026, 11, 29, 9, 0, tzinfo=UTC), order_id=5)
        _plant("ch_6", "7.00", datetime(2026, 11, 29, 9, 0, tzinfo=UTC), order_id=5)
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("reconciliation", "0010_provider_order_captures")])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert _kept() == {
        ("EUR", datetime(2026, 11, 29, 8, tzinfo=UTC)): Decimal("12.50"),
        ("EUR", datetime(2026, 11, 29, 9, tzinfo=UTC)): Decimal("14.00"),
    }
    assert _open_charges() == {5: 2}
    assert provider_net_drift() == provider_captures_drift() == []
    _plant("ch_4", "1.00", datetime(2026, 11, 29, 8, 50, tzinfo=UTC), order_id=5)  # the triggers took over
    assert _kept()[("EUR", datetime(2026, 11, 29, 8, tzinfo=UTC))] == Decimal("13.50")
    assert _open_charges() == {5: 3}


# --- the open charges per order (the shared join's duplicate candidates) -------------


def test_the_open_charges_per_order_follow_every_write_of_the_charges():
    created = datetime(2026, 11, 29, 8, 15, tzinfo=UTC)
    _plant("ch_1", "25.00", created, order_id=7)
    _plant("ch_2", "25.00", created, order_id=7)
    _plant("ch_3", "25.00", created, order_id=8, refunded_minor=2500)  # refunded in full: not open
    _plant("ch_4", "25.00", created, order_id=9, status="failed")
    _plant("ch_5", "25.00", created)  # names no order
    assert _open_charges() == {7: 2}

    _sql("UPDATE reconciliation_providercharge SET amount_refunded_minor = 2500 WHERE provider_id = 'ch_2'")
    assert _open_charges() == {7: 1}
    _sql(
        "UPDATE reconciliation_providercharge SET amount_refunded_minor = 0, order_id = 8 WHERE provider_id = 'ch_3'"
    )
    _sql("UPDATE reconciliation_providercharge SET status = 'succeeded' WHERE provider_id = 'ch_4'")
    assert _open_charges() == {7: 1, 8: 1, 9: 1}
    _sql("DELETE FROM reconciliation_providercharge WHERE order_id = 7")
    assert _open_charges() == {8: 1, 9: 1}
    assert provider_captures_drift() == []
    _sql("TRUNCATE reconciliation_providercharge")
    assert ProviderOrderCaptures.objects.count() == 0


def test_a_second_charge_planted_with_raw_sql_is_a_duplicate_for_the_full_pass(shop):
    """Both charges match the order's total: only the kept count makes the order a
    candidate of the shared join, and duplicate_charge reports it."""
    from reconciliation.models import ReconciliationRun
    from reconciliation.services import reconcile_run

    order_id = shop.order()  # pending, inside its SLA: two captures are a duplicate
    created = datetime(2026, 11, 29, 8, 15, tzinfo=UTC)
    _plant("ch_a", "25.00", created, order_id=order_id)
    _plant("ch_b", "25.00", created, order_id=order_id)

    run = reconcile_run(sync=False, full=True)

    assert "shared_join" in ReconciliationRun.objects.get(pk=run.run_id).detectors
    assert Incident.objects.get(type="duplicate_charge").order_id == order_id


def test_open_charges_written_behind_the_triggers_back_are_found_by_the_consistency_check():
    created = datetime(2026, 11, 29, 8, 15, tzinfo=UTC)
    _plant("ch_1", "25.00", created, order_id=7)
    _sql("ALTER TABLE reconciliation_providercharge DISABLE TRIGGER reconciliation_providercaptures_ins")
    _plant("ch_2", "25.00", created, order_id=7)
    _sql("ALTER TABLE reconciliation_providercharge ENABLE TRIGGER reconciliation_providercaptures_ins")

    assert provider_captures_drift() == [{"order_id": 7, "kept": 1, "charges": 2}]
    assert verify_balances.apply().get() == 1
    assert (
        Incident.objects.get(type="read_model_drift").fingerprint
        == "read_model_drift:provider_order_captures"
    )


# --- the ledger's side: payments' running balance ------------------------------------


def _plant_ledger(amount: str, created_at: datetime) -> None:
    """A balanced provider_clearing posting written with raw SQL (no ledger_post)."""
    _sql(
        "INSERT INTO payments_ledgeraccount (code, currency) VALUES ('provider_clearing', 'EUR'), "
        "('customer_funds', 'EUR') ON CONFLICT DO NOTHING"
    )
    _sql(
        "WITH t AS (INSERT INTO payments_ledgertransaction (kind, currency, reference, memo, created_at) "
        "VALUES ('adjustment', 'EUR', %s, '', %s) RETURNING id) "
        "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount, currency) "
        "SELECT t.id, a.id, CASE a.code WHEN 'provider_clearing' THEN %s::numeric ELSE -%s::numeric END, 'EUR' "
        "FROM t, payments_ledgeraccount a WHERE a.currency = 'EUR' "
        "AND a.code IN ('provider_clearing', 'customer_funds')",
        [f"planted:{created_at.isoformat()}", created_at, amount, amount],
    )


def _clearing_details(now: datetime = NOW) -> list[tuple[str, str]]:
    findings = detector_get("clearing_mismatch").find(DetectionContext(now=now))
    return [(f.details["ledger_provider_clearing"], f.details["provider_net"]) for f in findings]


def test_a_ledger_posting_planted_with_raw_sql_is_found_by_the_detector():
    _plant("ch_1", "10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))
    _plant_ledger("10.00", datetime(2026, 11, 29, 8, 16, tzinfo=UTC))
    assert _clearing_details() == []  # in agreement

    _plant_ledger("3.00", datetime(2026, 11, 29, 9, 0, tzinfo=UTC))  # booked, never charged
    _plant_ledger("1.00", datetime(2026, 11, 30, 12, 5, tzinfo=UTC))  # the cutoff's hour: entries
    _plant_ledger("50.00", datetime(2026, 11, 30, 12, 29, 30, tzinfo=UTC))  # after the cutoff

    assert _clearing_details() == [("14.00", "10.00")]


def test_a_ledger_posting_behind_the_trigger_s_back_is_found_by_the_consistency_check():
    """The detector trusts payments' balance: with its trigger disabled a posting is not
    in it (clearing_mismatch agrees wrongly); the hourly check finds the hour."""
    _plant("ch_1", "10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))
    _plant_ledger("10.00", datetime(2026, 11, 29, 8, 16, tzinfo=UTC))
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # the ledger's commit-time check, so the ALTER may run
    _sql("ALTER TABLE payments_ledgerentry DISABLE TRIGGER payments_ledgerbalance_ins")
    _plant_ledger("3.00", datetime(2026, 11, 29, 9, 0, tzinfo=UTC))
    _sql("ALTER TABLE payments_ledgerentry ENABLE TRIGGER payments_ledgerbalance_ins")

    assert _clearing_details() == []
    assert verify_balances.apply().get() == 2  # provider_clearing and customer_funds, 09h
    incident = Incident.objects.get(type="read_model_drift")
    assert incident.fingerprint == "read_model_drift:ledger_balance_by_hour"
    assert [(row["account"], row["kept"], row["entries"]) for row in incident.details["first"]] == [
        ("customer_funds", "0", "-3.00"),
        ("provider_clearing", "0", "3.00"),
    ]


def test_the_read_models_check_leaves_the_balance_drift_incident_alone():
    """Both report read_model_drift; each resolves only its own incidents."""
    from readmodels.services import read_models_check

    _plant("ch_1", "10.00", datetime(2026, 11, 29, 8, 15, tzinfo=UTC))
    ProviderNetByHour.objects.update(net=Decimal("9.00"))
    assert verify_balances.apply().get() == 1

    read_models_check(confirm=False, full=True)

    assert Incident.objects.get(type="read_model_drift").state == "open"
