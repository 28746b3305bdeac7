"""insert_unless_exists prepares each column with a reader built once per model: the
value Django's pre_save/get_db_prep_save chain would send, without the chain when the
attribute already holds a plain value (issue 16). These tests pin "the same value as
the chain" for the hot path's models and "the chain itself" for everything else."""

from __future__ import annotations

import copy
import datetime
import warnings
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import CharField, DateTimeField, DecimalField, IntegerField, JSONField
from django.utils import timezone
from django.utils.functional import lazy
from psycopg.types.json import Jsonb

from core.sql import _insert_plan, _value_reader, insert_unless_exists
from payments.models import Payment
from sagas.models import SagaRun


def _chain(instance) -> list:
    fields = [f for f in type(instance)._meta.concrete_fields if not f.primary_key]
    return [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]


def _read(instance, conflict: tuple[str, ...]) -> list:
    _, readers = _insert_plan(type(instance), conflict)
    return [read(instance, connection.ops, connection) for read in readers]


def _comparable(value):
    if isinstance(value, Jsonb):
        return ("jsonb", value.obj)
    return (type(value), value)


def _same(fast: list, chain: list, stamped: set[int]) -> None:
    assert len(fast) == len(chain)
    for index, (a, b) in enumerate(zip(fast, chain, strict=True)):
        if index in stamped:  # auto_now(_add): both "now", a few microseconds apart
            assert type(a) is type(b) and abs(a - b) < datetime.timedelta(seconds=5)
        else:
            assert _comparable(a) == _comparable(b), index


def _stamped(model) -> set[int]:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    return {
        i for i, f in enumerate(fields) if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    }


def _payment() -> Payment:
    return Payment(order_id=7, amount=Decimal("12.50"), currency="EUR", payment_method="pm_card_ok")


def _run(**overrides) -> SagaRun:
    now = timezone.now()
    values = {
        "saga_type": "checkout",
        "subject_id": "7",
        "context": {"payment_id": 3},
        "step": "reserve",
        "next_attempt_at": now,
        "sla_at": now,
        "origin": {"request_id": "r-1", "client_id": 1},
    }
    return SagaRun(**{**values, **overrides})


def test_the_hot_path_models_get_exactly_the_values_of_the_field_chain():
    for instance, conflict in (
        (_payment(), ("order_id",)),
        (_run(), ("saga_type", "subject_id")),
        (_run(origin=None), ("saga_type", "subject_id")),
    ):
        twin = copy.copy(instance)  # same defaults (e.g. a new uuid per instance)
        _same(_read(instance, conflict), _chain(twin), _stamped(type(instance)))


def test_auto_now_fields_are_stamped_on_the_instance_as_save_does():
    payment = _payment()
    assert payment.created_at is None
    _read(payment, ("order_id",))
    assert payment.created_at is not None and payment.updated_at is not None


def _field(field):
    field.set_attributes_from_name("x")
    return _value_reader(field)


def _value(reader, value):
    return reader(SimpleNamespace(x=value), connection.ops, connection)


def test_values_that_are_not_plain_take_the_field_chain():
    converted = _value(_field(IntegerField()), "5")  # converted, as save() converts it
    assert converted == 5 and type(converted).__name__ == "Int4"
    assert _value(_field(CharField(max_length=9)), lazy(lambda: "lazy", str)()) == "lazy"
    with pytest.raises(ValidationError):
        _value(_field(DecimalField(max_digits=9, decimal_places=2)), Decimal("NaN"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        naive = datetime.datetime(2026, 1, 1, 12, 0)
        assert _value(_field(DateTimeField()), naive) is not None
    assert any("naive datetime" in str(w.message) for w in caught)
    assert _value(_field(JSONField(null=True)), None) is None  # SQL NULL, not JSON null


def test_a_field_that_prepares_values_its_own_way_is_never_fast_pathed():
    class Upper(CharField):
        def get_prep_value(self, value):
            return super().get_prep_value(value).upper()

    assert _value(_field(Upper(max_length=9)), "abc") == "ABC"


@pytest.mark.django_db
def test_insert_unless_exists_writes_the_prepared_row_once():
    first = _payment()
    assert insert_unless_exists(first, conflict=["order_id"]) is True
    assert insert_unless_exists(_payment(), conflict=["order_id"]) is False
    stored = Payment.objects.get(pk=first.pk)
    assert (stored.order_id, stored.amount, stored.currency, stored.status) == (
        7,
        Decimal("12.50"),
        "EUR",
        "pending",
    )
