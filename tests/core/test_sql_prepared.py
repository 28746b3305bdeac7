"""core.sql.prepared: an ORM query compiled once per process, its slots (datetimes,
integers, texts) filled at each call (issue 16: the back office's overview, waiting
page and an order's case file). The statement
must give exactly what the QuerySet gives, with every call's own moments — never the
moment it was compiled with — and refuse a builder whose slots it cannot find."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from core.sql import int_slot, prepared, prepared_forget, slot, str_slot
from sagas import selectors
from sagas.models import SagaRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh():
    prepared_forget()
    yield
    prepared_forget()


@pytest.fixture
def runs():
    now = timezone.now()
    made = []
    for i in range(6):
        made.append(
            SagaRun.objects.create(
                saga_type="checkout",
                subject_id=f"p{i}",
                status="running" if i % 2 else "failed",
                attempts=i,
                last_error=f"e{i}",
                context={"order_id": i, "nested": {"k": [1, 2]}},
                sla_at=now + timedelta(minutes=10 * i - 25),  # i < 3: past its SLA
            )
        )
    return made


def test_the_slots_take_each_calls_values_and_the_build_runs_once(runs):
    built = []

    def build():
        built.append(1)
        return (
            SagaRun.objects.filter(sla_at__lte=slot(0), created_at__gte=slot(1))
            .order_by("pk")
            .values("pk", "attempts", "sla_at")
        )

    now = timezone.now()
    for moment in (now, now + timedelta(minutes=12), now - timedelta(hours=1)):
        got = prepared("t", build, slots=2).dicts(moment, now - timedelta(days=1))
        expected = list(
            SagaRun.objects.filter(sla_at__lte=moment, created_at__gte=now - timedelta(days=1))
            .order_by("pk")
            .values("pk", "attempts", "sla_at")
        )
        assert got == expected
    assert built == [1]
    assert [len(prepared("t", build, slots=2).rows(m, now - timedelta(days=1))) for m in (now,)] == [3]


def test_annotations_are_named_as_values_names_them(runs):
    def build():
        return (
            SagaRun.objects.annotate(w_tries=F("attempts"), w_id=F("pk"))
            .order_by("pk")
            .values("w_id", "w_tries")
        )

    assert prepared("names", build).dicts() == list(
        SagaRun.objects.annotate(w_tries=F("attempts"), w_id=F("pk")).order_by("pk").values("w_id", "w_tries")
    )


def test_instances_are_what_the_queryset_returns_json_included(runs):
    now = timezone.now()
    statement = prepared("inst", lambda: SagaRun.objects.filter(sla_at__lte=slot(0)).order_by("pk"), slots=1)
    got = statement.instances(SagaRun, now)
    expected = list(SagaRun.objects.filter(sla_at__lte=now).order_by("pk"))
    assert [r.pk for r in got] == [r.pk for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert {f.attname: getattr(a, f.attname) for f in SagaRun._meta.concrete_fields} == {
            f.attname: getattr(b, f.attname) for f in SagaRun._meta.concrete_fields
        }
    assert got[0].context == {"order_id": 0, "nested": {"k": [1, 2]}}
    with pytest.raises(TypeError, match="columns"):
        prepared("vals", lambda: SagaRun.objects.order_by("pk").values("pk")).instances(SagaRun)


def test_integer_and_text_slots_take_each_calls_values(runs):
    """An id, a text and a moment in one statement: each call's own, in slot order
    whatever their order among the compiled parameters."""
    now = timezone.now()
    statement = prepared(
        "typed",
        lambda: (
            SagaRun.objects.filter(saga_type=str_slot(2), created_at__lte=slot(1), id__gte=int_slot(0))
            .order_by("pk")
            .values_list("pk", flat=True)
        ),
        slots=3,
    )
    for first in SagaRun.objects.order_by("pk").values_list("pk", flat=True):
        for kind in ("checkout", "cancellation", "none"):
            assert [r[0] for r in statement.rows(first, now, kind)] == list(
                SagaRun.objects.filter(saga_type=kind, created_at__lte=now, id__gte=first)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
    with pytest.raises(ValueError, match=r"slot\(0\) is 2 times"):
        prepared("mixed twice", lambda: SagaRun.objects.filter(id=int_slot(0), created_at=slot(0)), slots=1)


def test_a_slot_missing_twice_or_undeclared_is_refused():
    with pytest.raises(ValueError, match=r"slot\(0\) is 0 times"):
        prepared("none", lambda: SagaRun.objects.all(), slots=1)
    with pytest.raises(ValueError, match=r"slot\(0\) is 2 times"):
        prepared("twice", lambda: SagaRun.objects.filter(sla_at=slot(0), created_at=slot(0)), slots=1)
    with pytest.raises(ValueError, match="2 slots among the parameters, 1 declared"):
        prepared("extra", lambda: SagaRun.objects.filter(sla_at=slot(0), created_at=slot(1)), slots=1)
    with pytest.raises(TypeError, match="1 slot value"):
        prepared("ok", lambda: SagaRun.objects.filter(sla_at=slot(0)), slots=1).rows()


def test_the_stuck_list_built_once_reads_now_at_each_call(runs):
    """saga_runs_list() with no filter (the overview's "Oldest stuck sagas") runs a
    statement compiled once: a running run whose SLA passes after the first call is in
    the second, and the list equals the ORM's, for every sort."""
    order = {
        "oldest": ("created_at", "pk"),
        "newest": ("-created_at", "-pk"),
        "attempts": ("-attempts", "pk"),
    }
    for sort, keys in order.items():
        expected = list(selectors._runs_filtered().order_by(*keys).values_list("pk", flat=True)[:4])
        assert [r.id for r in selectors.saga_runs_list(sort=sort, limit=4)] == expected
    before = {r.id for r in selectors.saga_runs_list(limit=50)}
    late = runs[3]  # running, its SLA 5 minutes ahead
    assert late.pk not in before
    SagaRun.objects.filter(pk=late.pk).update(sla_at=timezone.now() - timedelta(seconds=1))
    assert late.pk in {r.id for r in selectors.saga_runs_list(limit=50)}
    # A run a person resolved leaves it at once.
    SagaRun.objects.filter(pk=runs[0].pk).update(status="resolved")
    assert runs[0].pk not in {r.id for r in selectors.saga_runs_list(limit=50)}


def test_the_lists_filters_built_once_give_what_the_orm_gives(runs):
    """The stuck list and every-run list with their filters (status, type, step, age,
    changed since: the back office's form) run a statement compiled once per shape of
    filters, the values its slots: the page and its capped count are the ORM's, for
    every shape and value, "now" read at each call."""
    import itertools

    now = timezone.now()
    for i, (status, kind, step) in enumerate(
        [
            ("compensation_failed", "cancellation", "refund_payment"),
            ("compensating", "cancellation", "restock"),
            ("completed", "checkout", "charge_payment"),
        ]
    ):
        SagaRun.objects.create(
            saga_type=kind, subject_id=f"q{i}", status=status, step=step, attempts=i,
            sla_at=now - timedelta(minutes=1), direction="compensate" if i < 2 else "forward",
        )  # fmt: skip
    SagaRun.objects.filter(pk__in=[r.pk for r in runs[:3]]).update(step="charge_payment")
    order = {
        "oldest": ("created_at", "pk"),
        "newest": ("-created_at", "-pk"),
        "attempts": ("-attempts", "pk"),
    }
    shapes = itertools.product(
        (None, ["failed"], ["running"], ["compensating", "compensation_failed"], ["completed"]),
        (None, "checkout", "cancellation"),
        (None, "charge_payment", "restock"),
        (None, now + timedelta(minutes=1), now - timedelta(days=1)),
        (None, now - timedelta(hours=1)),
        (True, False),
    )
    for statuses, kind, step, before, since, stuck_only in shapes:
        filters = {
            "statuses": statuses, "saga_type": kind, "step": step, "error_contains": None,
            "created_before": before, "changed_since": since, "stuck_only": stuck_only,
        }  # fmt: skip
        for sort in ("oldest", "attempts"):
            expected = list(
                selectors._runs_filtered(**filters).order_by(*order[sort]).values_list("pk", flat=True)[:3]
            )
            assert [r.id for r in selectors.saga_runs_list(sort=sort, limit=3, **filters)] == expected, (
                filters
            )
        assert selectors.saga_runs_count(cap=2, **filters) == selectors._runs_filtered(**filters)[:3].count()
        assert selectors.saga_runs_count(**filters) == selectors._runs_filtered(**filters).count()


def test_the_error_scans_where_compiled_once_reads_now_at_each_call(runs):
    """?error= (sagas.selectors._stuck_where): the WHERE is compiled once per filter
    values, "now" its parameter: a run whose SLA passes between two reads is counted
    and listed in the second."""
    late = runs[3]  # running, its SLA 5 minutes ahead, last_error "e3"
    assert selectors.saga_runs_count(cap=100, error_contains="e3") == 0
    assert selectors.saga_runs_list(error_contains="e3") == []
    SagaRun.objects.filter(pk=late.pk).update(sla_at=timezone.now() - timedelta(seconds=1))
    assert selectors.saga_runs_count(cap=100, error_contains="e3") == 1
    assert [r.id for r in selectors.saga_runs_list(error_contains="e3")] == [late.pk]
    # With another filter's own moment in the WHERE too.
    created_before = timezone.now() + timedelta(minutes=1)
    assert [r.id for r in selectors.saga_runs_list(error_contains="e3", created_before=created_before)] == [
        late.pk
    ]
    assert (
        selectors.saga_runs_list(error_contains="e3", created_before=late.created_at - timedelta(seconds=1))
        == []
    )


# --- prepared on the connection (core.sql.fetchall_prepared) ---------------------------------


def _ours() -> list[tuple[str, int, int]]:
    """This connection's prepared statements made through the protocol (not SQL PREPARE):
    (text, generic plans, custom plans)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE NOT from_sql ORDER BY prepare_time"
        )
        return cursor.fetchall()


def _stuck_since():
    return prepared(
        "since",
        lambda: SagaRun.objects.filter(sla_at__lte=slot(0)).order_by("pk").values_list("pk", flat=True),
        slots=1,
    )


def test_a_statement_built_once_is_prepared_once_and_executed_by_name(runs):
    """Django binds on the client: every execution is new text, planned anew. A statement
    built once runs as one prepared statement of the connection, each call an execution
    of it; after its first five custom plans PostgreSQL may keep a generic one and skip
    the planner (≈ 2 ms of an order's case file, issue 16; whether it does is its cost
    estimate's choice). Every other statement stays unprepared."""
    now = timezone.now()
    statement = _stuck_since()
    for i in range(12):
        moment = now + timedelta(minutes=5 * i - 30)
        assert [r[0] for r in statement.rows(moment)] == list(
            SagaRun.objects.filter(sla_at__lte=moment).order_by("pk").values_list("pk", flat=True)
        )
    ours = _ours()
    assert len(ours) == 1, ours  # the ORM's own reads above were not prepared
    text, generic, custom = ours[0]
    assert "$1" in text and '"sagas_sagarun"."sla_at" <= $1' in text
    assert generic + custom == 12, ours


def test_a_statement_prepared_in_a_rolled_back_transaction_stays_usable(runs):
    """PostgreSQL keeps prepared statements through a rollback, even one prepared inside
    the transaction rolled back (a savepoint here; psycopg itself forgets its names after
    a whole transaction's ROLLBACK and prepares again). What it cannot see is a pooler's
    DISCARD ALL: DATABASE_PREPARED_STATEMENTS=false there."""
    from django.db import transaction

    now = timezone.now()
    statement = _stuck_since()
    expected = list(SagaRun.objects.filter(sla_at__lte=now).order_by("pk").values_list("pk", flat=True))
    try:
        with transaction.atomic():
            assert [r[0] for r in statement.rows(now)] == expected
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert len(_ours()) == 1
    for _ in range(3):
        assert [r[0] for r in statement.rows(now)] == expected
    assert len(_ours()) == 1


def test_switched_off_nothing_is_prepared(runs, settings):
    """DATABASE_PREPARED_STATEMENTS=false (a pooler in transaction mode): the same
    statements, bound on the server, none prepared."""
    settings.DATABASE_PREPARED_STATEMENTS = False
    now = timezone.now()
    for _ in range(3):
        got = [r[0] for r in _stuck_since().rows(now)]
    assert got == list(SagaRun.objects.filter(sla_at__lte=now).order_by("pk").values_list("pk", flat=True))
    assert _ours() == []


def test_other_statements_are_never_prepared_nor_counted(runs):
    """psycopg prepares only while the connection has a threshold, and with one it
    keeps count of every statement's text (≈ 6 µs each): core.sql sets it only around
    its own executions, so the ORM's statements, run many times, stay unprepared and
    uncounted."""
    from django.db import connection

    _stuck_since().rows(timezone.now())
    assert connection.connection.prepare_threshold is None
    for _ in range(10):
        list(SagaRun.objects.filter(pk=runs[0].pk))
    assert len(_ours()) == 1
    assert not connection.connection._prepared._counts


def test_the_setting_is_on_unless_switched_off(monkeypatch):
    import importlib

    import config.settings.base as base

    try:
        assert base.DATABASE_PREPARED_STATEMENTS is True
        monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "false")
        assert importlib.reload(base).DATABASE_PREPARED_STATEMENTS is False
    finally:
        monkeypatch.delenv("DATABASE_PREPARED_STATEMENTS")
        importlib.reload(base)


def test_a_failing_statement_is_djangos_error_and_logged_with_its_text():
    from django.db import ProgrammingError, connection, transaction
    from django.test.utils import CaptureQueriesContext

    from core.sql import fetchall_prepared

    with pytest.raises(ProgrammingError), transaction.atomic():
        fetchall_prepared("SELECT no_such_column FROM sagas_sagarun WHERE id = %s", [1])
    with CaptureQueriesContext(connection) as ctx:
        assert fetchall_prepared("SELECT %s::int + 1", [41]) == [(42,)]
    assert ctx.captured_queries[-1]["sql"] == "SELECT $1::int + 1"


def test_a_statements_own_values_are_in_its_text_so_a_generic_plan_uses_partial_indexes(runs):
    """A prepared statement is planned once for every call. The stuck list's statuses
    are the query's own values: as parameters the generic plan could not prove the
    partial stuck index applies (its count took 23 ms instead of 0.7 at 1M runs); in
    the text, it does. Only the slots ("now") stay parameters."""
    from django.db import connection

    with connection.cursor() as cursor:
        for off in ("enable_seqscan", "enable_bitmapscan"):
            cursor.execute(f"SET LOCAL {off} = off")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    assert selectors.saga_runs_count(cap=1000) == selectors._runs_filtered()[:1001].count()
    ((name, text),) = [
        row for row in _named() if row[1].startswith("SELECT COUNT(*)") and "sagas_sagarun" in row[1]
    ]
    assert "$1" in text and "$2" not in text, text
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN EXECUTE {name}(now())")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "sagas_run_stuck_" in plan, plan  # one of the partial indexes on the stuck runs


def _named() -> list[tuple[str, str]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql")
        return cursor.fetchall()
