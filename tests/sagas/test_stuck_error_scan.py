"""The stuck list filtered by error text (`?error=`) reads the stuck runs in the list's
order a chunk at a time (sagas.selectors._stuck_error_scan): it must return exactly
what the plain filtered query returns, in the same order, for every sort, page and
count cap — and a common text must cost one chunk (one statement), not a scan."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sagas import selectors
from sagas.models import SagaRun

pytestmark = pytest.mark.django_db

ERRORS = [
    "charge transient: HTTP 500: provider_error",
    "refund refused: HTTP 402 refund_declined",
    "Timeout 100%_sure",
    "",
]


@pytest.fixture
def runs():
    """60 runs: every status the stuck list looks at (active ones before and past
    their SLA) and healthy ones, several errors, attempts with many ties, created in an
    order that is not the id order."""
    now = timezone.now()
    statuses = ["failed", "compensation_failed", "running", "compensating", "completed", "compensated"]
    made = []
    for i, (status, error) in enumerate(
        itertools.islice(itertools.cycle(itertools.product(statuses, ERRORS)), 60)
    ):
        made.append(
            SagaRun.objects.create(
                saga_type="checkout",
                subject_id=f"s{i}",
                status=status,
                attempts=i % 4,
                last_error=error,
                # half the active runs are past their SLA
                sla_at=now - timedelta(minutes=5) if i % 2 else now + timedelta(minutes=30),
            ).pk
        )
    # created_at with ties and out of id order
    for n, pk in enumerate(made):
        SagaRun.objects.filter(pk=pk).update(created_at=now - timedelta(minutes=(n * 7) % 13))
    return made


def _plain(sort: str, **filters) -> list[int]:
    order = {
        "oldest": ("created_at", "pk"),
        "newest": ("-created_at", "-pk"),
        "attempts": ("-attempts", "pk"),
    }
    return list(selectors._runs_filtered(**filters).order_by(*order[sort]).values_list("pk", flat=True))


@pytest.fixture(params=[(2, 4), (200, 8000)], ids=["tiny chunks", "default chunks"])
def chunks(request, monkeypatch):
    first, most = request.param
    monkeypatch.setattr(selectors, "ERROR_CHUNK_FIRST", first)
    monkeypatch.setattr(selectors, "ERROR_CHUNK_MAX", most)


@pytest.mark.parametrize("sort", ["oldest", "newest", "attempts"])
@pytest.mark.parametrize("error", ["http 5", "HTTP", "100%_", "%", "_sure", "no such text"])
@pytest.mark.parametrize(
    "statuses", [None, ["failed"], ["running", "compensating"], ["completed", "failed"], ["completed"]]
)
def test_the_chunked_scan_returns_what_the_plain_query_returns(runs, chunks, sort, error, statuses):
    filters = {"error_contains": error, "statuses": statuses}
    expected = _plain(sort, **filters)
    for offset, limit in ((0, 3), (2, 5), (0, 100), (len(expected), 3)):
        got = [r.id for r in selectors.saga_runs_list(sort=sort, offset=offset, limit=limit, **filters)]
        assert got == expected[offset : offset + limit], (offset, limit)
    for cap in (1, 2, 5, 1000):
        assert selectors.saga_runs_count(cap=cap, **filters) == min(cap + 1, len(expected))


def test_other_filters_narrow_the_scan_too(runs, chunks):
    filters = {"error_contains": "HTTP", "step": "", "created_before": timezone.now() - timedelta(minutes=3)}
    expected = _plain("attempts", **filters)
    assert expected  # the fixture has such runs
    assert [r.id for r in selectors.saga_runs_list(sort="attempts", limit=50, **filters)] == expected


def test_the_runs_read_with_the_chunk_are_what_the_orm_reads(runs):
    SagaRun.objects.filter(pk__in=runs[:10]).update(
        context={"order": 7, "lines": [1, 2]}, step="charge_payment"
    )
    expected = [
        selectors.run_to_dto(run)
        for run in selectors._runs_filtered(error_contains="HTTP").order_by("-attempts", "pk")
    ]
    assert selectors.saga_runs_list(sort="attempts", limit=100, error_contains="HTTP") == expected


def test_a_common_text_costs_one_chunk(runs):
    with CaptureQueriesContext(connection) as ctx:
        page = selectors.saga_runs_list(sort="attempts", limit=3, error_contains="HTTP")
    assert len(page) == 3
    assert len(ctx.captured_queries) == 1  # the chunk's keys and the matching runs
    with CaptureQueriesContext(connection) as ctx:
        assert selectors.saga_runs_count(cap=2, error_contains="HTTP") == 3
    assert len(ctx.captured_queries) == 1


def test_the_chunks_walk_the_stuck_indexes(runs):
    """A chunk, sorted each way, can be read from a partial stuck index in its order —
    no sort of the stuck runs (what made `?error=…&sort=attempts` slow at 1M runs). At
    60 rows the planner would rightly scan and sort; with those disabled it uses an
    index that gives the order if one exists (the key expression and the partial
    predicate match), and sorts anyway if none does."""
    with connection.cursor() as cursor:
        for off in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"SET LOCAL {off} = off")
        for sort, index in (
            ("oldest", "sagas_run_stuck_oldest_bo"),
            ("newest", "sagas_run_stuck_oldest_bo"),
            ("attempts", "sagas_run_stuck_attempts_bo"),
        ):
            with CaptureQueriesContext(connection) as ctx:
                selectors._stuck_error_scan(sort=sort, want=5, filters={"error_contains": "HTTP"})
            cursor.execute("EXPLAIN " + ctx.captured_queries[0]["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert index in plan, plan
            assert "Sort Key: sagas_sagarun" not in plan, plan
