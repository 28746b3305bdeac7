import csv
import datetime
import io

import pytest

pytestmark = pytest.mark.slow


def test_settlement_adds_up_per_currency_in_json_and_csv(psp, post, charge):
    # given: charges in two currencies, one declined, some refunds
    eur_1 = charge(amount=1000, currency="EUR")
    charge(amount=2000, currency="EUR")
    charge(amount=9999, currency="EUR", payment_method="pm_card_declined")  # no money moved
    usd = charge(amount=700, currency="USD")
    post("/v1/refunds", {"charge": eur_1["id"], "amount": 250})
    post("/v1/refunds", {"charge": usd["id"], "amount": 700})
    day = datetime.datetime.fromtimestamp(eur_1["created"], tz=datetime.UTC).date().isoformat()

    # when
    report = psp.request("GET", "/v1/settlements", params={"date": day}).json()
    csv_text = psp.request("GET", "/v1/settlements", params={"date": day, "format": "csv"}).text

    # then
    rows = {row["currency"]: row for row in report["by_currency"]}
    assert rows["EUR"] | {} == {
        "date": day, "currency": "EUR", "charges_count": 2, "charges_amount": 3000,
        "refunds_count": 1, "refunds_amount": 250, "net": 2750,
    }  # fmt: skip
    assert (rows["USD"]["charges_amount"], rows["USD"]["refunds_amount"], rows["USD"]["net"]) == (700, 700, 0)
    for currency, row in rows.items():
        items = [t["amount"] for t in report["transactions"] if t["currency"] == currency]
        assert sum(items) == row["net"] == row["charges_amount"] - row["refunds_amount"]
    parsed = list(csv.DictReader(io.StringIO(csv_text)))
    assert [{k: str(v) for k, v in row.items()} for row in report["by_currency"]] == parsed


def test_a_day_without_activity_is_empty(psp, charge):
    charge()

    report = psp.request("GET", "/v1/settlements", params={"date": "2001-01-01"}).json()

    assert report["by_currency"] == [] and report["transactions"] == []
