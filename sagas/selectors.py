"""Reads of the saga engine, as DTOs."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from core.errors import NotFound
from core.fsm import state_summary
from core.sql import (
    Part,
    Prepared,
    column,
    instance_from_row,
    parts_sql,
    prepared,
    read_parts,
    select_columns,
    slot,
    str_slot,
)

from . import registry
from .choices import (
    ACTIVE_STATUSES,
    ATTENTION_STATUSES,
    MANUAL_ACTION_PERMISSIONS,
    Direction,
    ManualAction,
    RunStatus,
    StepOutcome,
)
from .dto import SagaActionDTO, SagaRunDTO, StepLogDTO
from .models import SagaAction, SagaRun, SagaStepLog


def run_to_dto(run: SagaRun) -> SagaRunDTO:
    return SagaRunDTO(
        id=run.pk,
        saga_type=run.saga_type,
        subject_id=run.subject_id,
        status=run.status,
        step_index=run.step_index,
        step=run.step,
        direction=run.direction,
        attempts=run.attempts,
        next_attempt_at=run.next_attempt_at,
        lease_owner=run.lease_owner,
        lease_expires_at=run.lease_expires_at,
        last_error=run.last_error,
        failure_code=run.failure_code,
        context=copy.deepcopy(run.context),
        abort_requested=run.abort_requested,
        sla_at=run.sla_at,
        created_at=run.created_at,
        updated_at=run.updated_at,
    )


def saga_run_get(*, run_id: int) -> SagaRunDTO:
    run = SagaRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"Saga run {run_id} does not exist.", code="saga_not_found")
    return run_to_dto(run)


def saga_run_for_subject(*, saga_type: str, subject_id: str) -> SagaRunDTO | None:
    """The run of a subject ((saga_type, subject_id) is unique). On the checkout's
    path (order_confirm_paid): a statement built once per process (issue 16)."""
    with connection.cursor() as cursor:
        cursor.execute(_run_for_subject_sql(), [saga_type, str(subject_id)])
        row = cursor.fetchone()
    return run_to_dto(instance_from_row(SagaRun, row)) if row is not None else None


@functools.cache
def _run_for_subject_sql() -> str:
    table = connection.ops.quote_name(SagaRun._meta.db_table)
    return (
        f"SELECT {select_columns(SagaRun)} FROM {table} "  # noqa: S608 (identifiers from the model)
        f"WHERE {table}.{column(SagaRun, 'saga_type')} = %s AND {table}.{column(SagaRun, 'subject_id')} = %s"
    )


def saga_runs_stuck(*, now: datetime | None = None, limit: int = 500) -> list[SagaRunDTO]:
    """Runs a person must look at: failed, compensation_failed, or still active
    past their SLA. Each branch uses its own partial index."""
    now = now or timezone.now()
    runs = SagaRun.objects.filter(
        Q(status__in=ATTENTION_STATUSES) | Q(status__in=ACTIVE_STATUSES, sla_at__lte=now)
    ).order_by("updated_at", "pk")[:limit]
    return [run_to_dto(run) for run in runs]


def step_to_dto(row: SagaStepLog) -> StepLogDTO:
    return StepLogDTO(
        id=row.pk,
        run_id=row.run_id,
        step=row.step,
        direction=row.direction,
        attempt=row.attempt,
        outcome=row.outcome,
        error=row.error,
        duration_ms=row.duration_ms,
        worker=row.worker,
        started_at=row.started_at,
    )


def action_to_dto(row: SagaAction) -> SagaActionDTO:
    return SagaActionDTO(
        id=row.pk,
        run_id=row.run_id,
        action=row.action,
        by_id=row.by_id,
        by_username=row.by_username,
        reason=row.reason,
        from_status=row.from_status,
        to_status=row.to_status,
        step=row.step,
        direction=row.direction,
        created_at=row.created_at,
    )


def saga_step_log(*, run_id: int) -> list[StepLogDTO]:
    return [step_to_dto(row) for row in SagaStepLog.objects.filter(run_id=run_id).order_by("pk")]


def saga_action_log(*, run_id: int) -> list[SagaActionDTO]:
    return [action_to_dto(row) for row in SagaAction.objects.filter(run_id=run_id).order_by("pk")]


def saga_runs_due(now: datetime | None = None, *, limit: int | None = None) -> list[int]:
    """Ids of active runs the sweeper should (re-)enqueue: due for at least
    SAGA_SWEEP_GRACE seconds (a fresh run's on-commit poke gets a head start),
    whose lease is free or expired, and not re-enqueued within
    SAGA_SWEEP_REQUEUE_AFTER seconds (a run waiting in a long queue is not piled
    on). Uses the partial index on next_attempt_at; at most `limit` rows."""
    now = now or timezone.now()
    grace = timedelta(seconds=float(getattr(settings, "SAGA_SWEEP_GRACE", 5.0)))
    requeue_after = timedelta(seconds=float(getattr(settings, "SAGA_SWEEP_REQUEUE_AFTER", 30.0)))
    limit = limit or int(getattr(settings, "SAGA_SWEEP_BATCH", 500))
    return list(
        SagaRun.objects.filter(status__in=ACTIVE_STATUSES, next_attempt_at__lte=now - grace)
        .filter(Q(lease_owner="") | Q(lease_expires_at__lte=now))
        .filter(Q(swept_at__isnull=True) | Q(swept_at__lte=now - requeue_after))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def saga_runs_fresh(now: datetime | None = None, *, limit: int = 500) -> list[int]:
    """Ids of fresh runs, oldest first: active, forward, at the first step, never
    attempted, never leased and never enqueued (swept_at null), and due — what
    saga_start writes and tasks.start_fresh claims (tasks.claim_fresh_runs, the same
    predicate as one UPDATE … RETURNING). Served by the partial index sagas_run_fresh,
    which holds only such runs: its size is the runs waiting for their first pass."""
    now = now or timezone.now()
    return list(
        SagaRun.objects.filter(
            status=RunStatus.RUNNING,
            direction=Direction.FORWARD,
            step_index=0,
            attempts=0,
            lease_owner="",
            swept_at__isnull=True,
            next_attempt_at__lte=now,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def saga_operations_allowed(*, run: SagaRunDTO, user) -> list[str]:
    """The manual operations that are legal for this run and this person now, so
    pages offer only those (the services check again)."""
    status = run.status
    legal: list[str] = []
    if status in ATTENTION_STATUSES or (
        status in ACTIVE_STATUSES and run.next_attempt_at is not None and run.next_attempt_at > timezone.now()
    ):
        legal.append(ManualAction.RETRY_NOW)
    if (status == RunStatus.RUNNING and not run.abort_requested) or status == RunStatus.FAILED:
        if run.direction == Direction.FORWARD:
            legal.append(ManualAction.COMPENSATE)
    if status in ATTENTION_STATUSES:
        legal.append(ManualAction.SKIP_STEP)
        legal.append(ManualAction.MARK_RESOLVED)
    if user is None or not getattr(user, "is_authenticated", False):
        return []
    return [op for op in legal if user.has_perm(MANUAL_ACTION_PERMISSIONS[op])]


# --- Back-office reads ----------------------------------------------------------------

SAGA_LIST_SORTS = ("oldest", "newest", "attempts")


def _runs_filtered(
    *,
    statuses: list[str] | None = None,
    saga_type: str | None = None,
    step: str | None = None,
    error_contains: str | None = None,
    created_before: datetime | None = None,
    changed_since: datetime | None = None,
    stuck_only: bool = True,
    now: datetime | None = None,
):
    now = now or timezone.now()
    qs = SagaRun.objects.all()
    if stuck_only:
        # Stuck: an attention status, or active past the SLA — within `statuses` when
        # given. The plain `status IN (...)` lets the planner use the partial index
        # sagas_run_stuck_oldest_bo (created_at order, status and sla_at included): the
        # oldest page is read in order and the capped count is an index-only scan.
        wanted = {str(s) for s in statuses} if statuses else None
        attention = [s for s in ATTENTION_STATUSES if wanted is None or s in wanted]
        active = [s for s in ACTIVE_STATUSES if wanted is None or s in wanted]
        if not attention and not active:
            return qs.none()
        qs = qs.filter(status__in=[*attention, *active])
        if active:
            overdue = Q(status__in=active, sla_at__lte=now)
            qs = qs.filter(Q(status__in=attention) | overdue) if attention else qs.filter(overdue)
    elif statuses:
        qs = qs.filter(status__in=statuses)
    if saga_type:
        qs = qs.filter(saga_type=saga_type)
    if step:
        qs = qs.filter(step=step)
    if error_contains:
        qs = qs.filter(last_error__icontains=error_contains)
    if created_before is not None:
        qs = qs.filter(created_at__lte=created_before)
    if changed_since is not None:
        # "failed since 14:02": a run's last change is when it reached its state.
        qs = qs.filter(updated_at__gte=changed_since)
    return qs


def saga_runs_list(
    *, sort: str = "oldest", limit: int = 100, offset: int = 0, **filters: Any
) -> list[SagaRunDTO]:
    """Runs for the staff queue, filtered in SQL. `stuck_only` keeps what
    saga_runs_stuck would return (attention states, or active past the SLA);
    `created_before` is the age filter, `changed_since` when the run last changed (e.g.
    failed). Filters: see saga_runs_count. One query whatever the page size — except
    the stuck list filtered by error text, which reads the stuck runs in the list's
    order a chunk at a time (_stuck_error_scan)."""
    order = {
        "oldest": ("created_at", "pk"),
        "newest": ("-created_at", "-pk"),
        "attempts": ("-attempts", "pk"),
    }
    sort = sort if sort in order else "oldest"
    offset = max(0, offset)
    limit = max(1, min(limit, 1000))
    if filters.get("error_contains") and filters.get("stuck_only", True):
        return [
            run_to_dto(run)
            for run in _stuck_error_scan(sort=sort, want=offset + limit, filters=filters)[offset:]
        ]
    built = _runs_statement(
        ("saga_runs_list", sort, offset, limit),
        filters,
        lambda qs: qs.order_by(*order[sort])[offset : offset + limit],
    )
    if built is not None:
        statement, values = built
        return [run_to_dto(run) for run in statement.instances(SagaRun, *values)]
    qs = _runs_filtered(**filters).order_by(*order[sort])
    return [run_to_dto(run) for run in qs[offset : offset + limit]]


_SLOTTED_TEXT = ("saga_type", "step")
_SLOTTED_MOMENTS = ("created_before", "changed_since")


def _runs_statement(
    key: tuple[Any, ...], filters: dict[str, Any], shape: Any
) -> tuple[Prepared, list[Any]] | None:
    """`shape(_runs_filtered(**filters))` as a statement compiled once per process and
    shape of filters (core.sql.prepared: which filters are given, the statuses asked
    for, stuck or every run), the filters' texts and moments and "now" its slots, and
    those values; None where the ORM must compile it (an error text: `icontains`
    wraps its value; statuses that leave nothing to read). The stuck list and its
    filters are read at every view, and compiling them cost more CPU than running them
    (issue 16)."""
    unknown = set(filters) - {*_SLOTTED_TEXT, *_SLOTTED_MOMENTS, "statuses", "stuck_only", "error_contains"}
    if unknown or filters.get("error_contains"):
        return None
    stuck_only = bool(filters.get("stuck_only", True))
    statuses = tuple(str(s) for s in filters.get("statuses") or ())
    if stuck_only and statuses and not set(statuses) & {*ATTENTION_STATUSES, *ACTIVE_STATUSES}:
        return None
    given = tuple(name for name in (*_SLOTTED_TEXT, *_SLOTTED_MOMENTS) if filters.get(name) not in (None, ""))
    values = [filters[name] for name in given]
    # "now" is read only where active runs past their SLA are among those asked for.
    uses_now = stuck_only and (not statuses or bool(set(statuses) & set(ACTIVE_STATUSES)))

    def build() -> Any:
        args: dict[str, Any] = {
            name: (str_slot(n) if name in _SLOTTED_TEXT else slot(n)) for n, name in enumerate(given)
        }
        if uses_now:
            args["now"] = slot(len(given))
        return shape(_runs_filtered(**args, statuses=list(statuses) or None, stuck_only=stuck_only))

    statement = prepared((*key, stuck_only, statuses, given), build, slots=len(given) + uses_now)
    return statement, [*values, timezone.now()] if uses_now else values


def saga_runs_count(*, cap: int | None = None, **filters: Any) -> int:
    """How many runs saga_runs_list's filters match (its page total); with `cap`, at
    most cap + 1 (counting stops there: "more than cap", for a page over every run)."""
    if cap is not None and filters.get("error_contains") and filters.get("stuck_only", True):
        return len(_stuck_error_scan(sort="oldest", want=cap + 1, filters=filters, counting=True))
    if cap is not None:
        built = _runs_statement(("saga_runs_count", cap), filters, lambda qs: qs.values("pk")[: cap + 1])
        if built is not None:
            statement, values = built
            return statement.count(*values)
    qs = _runs_filtered(**filters)
    return qs[: cap + 1].count() if cap is not None else qs.count()


# The stuck runs filtered by a piece of their last error ("?error=HTTP 500"). How common
# a typed text is cannot be known to the planner: a plain query either reads every stuck
# run (a common text, sorted by attempts: ~30 ms at 26,000 stuck runs) or, with a trigram
# index, fetches thousands of matches (docs/benchmarks.md, "Back office pages"). So the
# stuck runs are read in the list's order, on the partial indexes kept in that order
# (sagas_run_stuck_oldest_bo, sagas_run_stuck_attempts_bo), in chunks of growing size,
# each chunk filtered by the text in SQL, until `want` matches are found or the stuck
# runs are exhausted: a common text costs about one chunk, a rare one every stuck run
# (never more: the chunks only walk the stuck index).
_STUCK_ORDERS = {
    # sort: (the chunk's key columns k1, k2 — in the order of a partial index on the
    # stuck runs —, ORDER BY and the keyset's comparison on them)
    "oldest": ("created_at", "id", "ASC", ">"),
    "newest": ("created_at", "id", "DESC", "<"),
    "attempts": ("(attempts * -1)", "id", "ASC", ">"),  # attempts desc, id asc
}
ERROR_CHUNK_FIRST = 200
ERROR_CHUNK_MAX = 8000


@functools.lru_cache(maxsize=64)
def _stuck_where(
    wanted: tuple[str, ...], attention: tuple[str, ...], others: tuple[tuple[str, Any], ...]
) -> tuple[str, tuple[Any, ...], int]:
    """_stuck_error_scan's WHERE (the stuck runs asked for and the other filters), the
    ORM's compilation kept per process and filter values: its SQL, its parameters and
    where "now" is among them (a page's count and list compile it once, not twice a
    request)."""
    overdue = Q(sla_at__lte=slot(0))
    base = _runs_filtered(
        **dict(others), error_contains=None, stuck_only=False, statuses=list(wanted)
    ).filter(Q(status__in=list(attention)) | overdue if attention else overdue)
    where_sql, where_params = base.query.get_compiler(using=base.db).compile(base.query.where)
    # "now" is the last parameter (its condition is added last); a filter's own moment
    # equal to slot(0) would come before it.
    at = [i for i, p in enumerate(where_params) if isinstance(p, datetime) and p == slot(0)][-1]
    return where_sql, tuple(where_params), at


def _stuck_error_scan(*, sort: str, want: int, filters: dict[str, Any], counting: bool = False) -> list[Any]:
    """The first `want` stuck runs (SagaRun) matching every filter, the error text
    (case-insensitive, as `icontains`) included, in the list's order; `counting`: only
    how many (at most `want`), as a list of that many zeros. One statement per chunk:
    the chunk's keys in index order after the previous chunk's last key, and of them
    the matching runs (or their number) plus the last key (where the next chunk starts)."""
    # The stuck runs asked for, said so that the planner estimates them right: with
    # _runs_filtered's `status IN (stuck) AND (status IN (attention) OR ...)` it
    # multiplies the two status selectivities, expects a few hundred runs instead of
    # 26,000 and sorts them all rather than read the index in order.
    wanted = [s for s in (*ATTENTION_STATUSES, *ACTIVE_STATUSES) if s in (filters.get("statuses") or [s])]
    attention = [s for s in wanted if s in ATTENTION_STATUSES]
    if not wanted:
        return []
    now = filters.get("now") or timezone.now()
    others = tuple(
        sorted(
            (k, v) for k, v in filters.items() if k not in ("now", "error_contains", "stuck_only", "statuses")
        )
    )
    try:
        where_sql, compiled_params, at = _stuck_where(tuple(wanted), tuple(attention), others)
    except TypeError:  # a filter value that cannot be a key (a list): compiled for this call
        where_sql, compiled_params, at = _stuck_where.__wrapped__(tuple(wanted), tuple(attention), others)
    where_params = [*compiled_params[:at], now, *compiled_params[at + 1 :]]
    k1, k2, direction, after_op = _STUCK_ORDERS[sort]
    pattern = f"%{connection.ops.prep_for_like_query(str(filters['error_contains']))}%"
    # Only constants and Django's compiled WHERE are put into the text; values are parameters.
    # w: the chunk's keys in order, whether each matches, and how many matched so far (m).
    chunk_sql = (
        "WITH w AS MATERIALIZED (SELECT s.*,"  # noqa: S608
        f" row_number() OVER (ORDER BY s.k1 {direction}, s.k2 {direction}) AS n,"
        f" count(*) FILTER (WHERE s.hit) OVER (ORDER BY s.k1 {direction}, s.k2 {direction} ROWS UNBOUNDED PRECEDING) AS m"
        f" FROM (SELECT {k1} AS k1, {k2} AS k2, UPPER(last_error::text) LIKE UPPER(%s) AS hit FROM sagas_sagarun"
        f" WHERE {where_sql}{{keyset}} ORDER BY {k1} {direction}, {k2} {direction} LIMIT %s) s)"
    )
    # The count needs no numbering: how many rows of the chunk match and how many it has,
    # and its last key only when another chunk must follow (it is full and short of
    # matches), read from the index alone at OFFSET chunk - 1 — the One-Time Filter on
    # a.c / a.h skips that subquery otherwise. Numbering the chunk's rows with window
    # functions over a materialized CTE cost 2-3 ms of the count's 4-6 (1,501 rows,
    # docs/benchmarks.md "overview").
    count_sql = (
        "SELECT a.h, a.c, l.k1, l.k2 FROM (SELECT count(*) FILTER (WHERE s.hit) AS h, count(*) AS c"  # noqa: S608
        " FROM (SELECT UPPER(last_error::text) LIKE UPPER(%s) AS hit FROM sagas_sagarun"
        f" WHERE {where_sql}{{keyset}} ORDER BY {k1} {direction}, {k2} {direction} LIMIT %s) s) a"
        f" LEFT JOIN LATERAL (SELECT {k1} AS k1, {k2} AS k2 FROM sagas_sagarun"
        f" WHERE {where_sql}{{keyset}} AND a.c = %s AND a.h < %s"
        f" ORDER BY {k1} {direction}, {k2} {direction} OFFSET %s LIMIT 1) l ON true"
    )
    # (n, k1, k2, wanted, the run's columns) of the matches still wanted and of the last row
    wanted_match = "(w.hit AND w.m <= %s)"
    select = (
        f" SELECT w.n, w.k1, w.k2, {wanted_match}, {select_columns(SagaRun)} FROM w"  # noqa: S608
        f" LEFT JOIN sagas_sagarun ON sagas_sagarun.id = w.k2 AND {wanted_match}"
        f" WHERE w.n = (SELECT max(n) FROM w) OR {wanted_match} ORDER BY w.n"
    )
    found: list[Any] = []
    after: tuple | None = None
    chunk = max(ERROR_CHUNK_FIRST, want + want // 2)  # a common text: one chunk
    with connection.cursor() as cursor:
        while len(found) < want:
            keyset = f" AND ({k1}, {k2}) {after_op} (%s, %s)" if after is not None else ""
            if counting:
                chunk_where = [*where_params, *(after or ())]
                cursor.execute(
                    count_sql.replace("{keyset}", keyset),
                    [pattern, *chunk_where, chunk, *chunk_where, chunk, want - len(found), chunk - 1],
                )
                matched, read, *last_key = cursor.fetchone()
                found.extend([0] * matched)
                if read < chunk or len(found) >= want:
                    break  # the stuck runs are exhausted, or the count is reached
                after = tuple(last_key)
                chunk = min(ERROR_CHUNK_MAX, chunk * 4)
                continue
            need = [want - len(found)] * 3
            cursor.execute(
                chunk_sql.replace("{keyset}", keyset) + select,
                [pattern, *where_params, *(after or ()), chunk, *need],
            )
            rows = cursor.fetchall()
            if not rows:
                break
            found.extend(instance_from_row(SagaRun, row[4:]) for row in rows if row[3])
            last = rows[-1][:3]
            if last[0] < chunk:
                break  # the stuck runs are exhausted
            after = (last[1], last[2])
            chunk = min(ERROR_CHUNK_MAX, chunk * 4)
    return found[:want]


def saga_runs_matching(*, cap: int, **filters: Any) -> list[SagaRunDTO]:
    """Every run the filters match, oldest first, at most `cap` (a bulk action's items)."""
    qs = _runs_filtered(**filters).order_by("pk")
    return [run_to_dto(run) for run in qs[:cap]]


def saga_runs_by_ids(*, run_ids: list[int]) -> list[SagaRunDTO]:
    return [run_to_dto(run) for run in SagaRun.objects.filter(pk__in=list(run_ids)).order_by("pk")]


def saga_runs_for_subject(*, subject_id: str) -> list[SagaRunDTO]:
    """Every run (any saga type) about one subject, e.g. an order's checkout and cancellation."""
    return [run_to_dto(run) for run in SagaRun.objects.filter(subject_id=str(subject_id)).order_by("pk")]


@dataclass(frozen=True)
class SubjectRuns:
    """Every run about one subject with its step log and staff actions (oldest first)."""

    runs: tuple[SagaRunDTO, ...]
    steps: dict[int, tuple[StepLogDTO, ...]]  # by run id; every run has an entry
    actions: dict[int, tuple[SagaActionDTO, ...]]


def saga_runs_with_logs_for_subject(*, subject_id: str) -> SubjectRuns:
    """saga_runs_for_subject, and saga_step_log and saga_action_log of each of those
    runs, in one statement (an order's case file read them in 1 + 2 per run)."""
    runs, steps, actions = read_parts(_subject_runs_sql(), [str(subject_id)] * 3, _subject_parts())
    run_dtos = tuple(run_to_dto(run) for run, _ in runs)
    steps_by_run: dict[int, list[StepLogDTO]] = {run.id: [] for run in run_dtos}
    actions_by_run: dict[int, list[SagaActionDTO]] = {run.id: [] for run in run_dtos}
    for step, _ in steps:
        steps_by_run[step.run_id].append(step_to_dto(step))
    for action, _ in actions:
        actions_by_run[action.run_id].append(action_to_dto(action))
    return SubjectRuns(
        runs=run_dtos,
        steps={k: tuple(v) for k, v in steps_by_run.items()},
        actions={k: tuple(v) for k, v in actions_by_run.items()},
    )


@functools.cache
def _subject_parts() -> tuple[Part, ...]:
    quote = connection.ops.quote_name
    run_table, step_table, action_table = (
        quote(m._meta.db_table) for m in (SagaRun, SagaStepLog, SagaAction)
    )
    subject = f"{run_table}.{column(SagaRun, 'subject_id')} = %s"
    runs = f"SELECT {run_table}.id FROM {run_table} WHERE {subject}"  # noqa: S608
    return (
        Part(SagaRun, f"FROM {run_table} WHERE {subject}", f"{run_table}.id"),
        Part(
            SagaStepLog,
            f"FROM {step_table} WHERE {column(SagaStepLog, 'run')} IN ({runs})",
            f"{step_table}.id",
        ),
        Part(
            SagaAction,
            f"FROM {action_table} WHERE {column(SagaAction, 'run')} IN ({runs})",
            f"{action_table}.id",
        ),
    )


@functools.cache
def _subject_runs_sql() -> str:
    return parts_sql(_subject_parts())


def saga_state_summary() -> dict:
    """Per status: how many runs and since when the oldest sits there (updated_at),
    plus the state graph read from the FSM definition."""
    return state_summary(SagaRun, "status", RunStatus.choices)


def saga_attention_counts(*, now: datetime | None = None) -> dict[str, dict]:
    """For a dashboard: per attention status (failed, compensation_failed) how many runs
    and the oldest updated_at, plus "overdue" (active runs past their SLA). Served by
    the partial indexes on those statuses, so the cost follows the runs that need a
    person, not the whole history (saga_state_summary scans every run)."""
    now = now or timezone.now()
    # COUNT(*), not COUNT(id): id is not in the partial indexes, so counting it would
    # fetch every row from the heap instead of an index-only scan (23,000 at 1M runs).
    rows = {
        r["status"]: {"count": r["count"], "oldest_at": r["oldest"]}
        for r in SagaRun.objects.filter(status__in=ATTENTION_STATUSES)
        .order_by()
        .values("status")
        .annotate(count=Count("*"), oldest=Min("updated_at"))
    }
    overdue = SagaRun.objects.filter(status__in=ACTIVE_STATUSES, sla_at__lte=now).aggregate(
        count=Count("*"), oldest=Min("sla_at")
    )
    return {
        **{str(s): rows.get(str(s), {"count": 0, "oldest_at": None}) for s in ATTENTION_STATUSES},
        "overdue": {"count": overdue["count"], "oldest_at": overdue["oldest"]},
    }


def saga_queue_summary(*, now: datetime | None = None) -> list[dict]:
    """Per saga type, for /metrics: active runs by status, how many are due now (the
    durable queue: Celery only carries pokes) and since when the oldest waits, runs
    whose lease expired (a worker died holding them), and the stuck ones — failed,
    compensation failed, or active past their SLA. Two aggregate queries over the
    partial indexes on active and attention runs: the cost follows those runs, not
    the history."""
    now = now or timezone.now()
    due = Q(next_attempt_at__lte=now)
    expired = ~Q(lease_owner="") & Q(lease_expires_at__lte=now)
    by_type: dict[str, dict] = {}

    def entry(saga_type: str) -> dict:
        return by_type.setdefault(
            saga_type,
            {
                "saga_type": saga_type,
                "running": 0,
                "compensating": 0,
                "due": 0,
                "oldest_due_at": None,
                "lease_expired": 0,
                "overdue": 0,
                "failed": 0,
                "compensation_failed": 0,
            },
        )

    active = (
        SagaRun.objects.filter(status__in=ACTIVE_STATUSES)
        .order_by()
        .values("saga_type")
        .annotate(
            running=Count("id", filter=Q(status=RunStatus.RUNNING)),
            compensating=Count("id", filter=Q(status=RunStatus.COMPENSATING)),
            due=Count("id", filter=due),
            oldest_due_at=Min("next_attempt_at", filter=due),
            lease_expired=Count("id", filter=expired),
            overdue=Count("id", filter=Q(sla_at__lte=now)),
        )
    )
    for row in active:
        entry(row["saga_type"]).update({k: v for k, v in row.items() if k != "saga_type"})
    attention = (
        SagaRun.objects.filter(status__in=ATTENTION_STATUSES)
        .order_by()
        .values("saga_type", "status")
        .annotate(count=Count("id"))
    )
    for row in attention:
        entry(row["saga_type"])[row["status"]] = row["count"]
    for saga_type in registry.names():  # every known type, zeros included: no gaps in a graph
        entry(saga_type)
    return sorted(by_type.values(), key=lambda r: r["saga_type"])


def saga_completion_summary(
    *, saga_type: str | None, start: datetime, end: datetime, within_seconds: float
) -> dict:
    """Runs of `saga_type` (None: every type) started in [start, end): how many, how
    many are stuck now (failed, compensation failed, or still active past their SLA),
    and of those that completed, how many and how fast (p99 of created -> completed; a
    completed run is never written again, so updated_at is its completion) and how
    many within `within_seconds`. One aggregate query, plus the percentile on
    PostgreSQL (the finance page's service-level lines)."""
    now = timezone.now()
    runs = SagaRun.objects.filter(created_at__gte=start, created_at__lt=end)
    if saga_type is not None:
        runs = runs.filter(saga_type=saga_type)
    completed = Q(status=RunStatus.COMPLETED)
    totals = runs.aggregate(
        started=Count("id"),
        completed=Count("id", filter=completed),
        stuck=Count(
            "id",
            filter=Q(status__in=ATTENTION_STATUSES) | (Q(status__in=ACTIVE_STATUSES) & Q(sla_at__lte=now)),
        ),
        within=Count(
            "id", filter=completed & Q(updated_at__lte=F("created_at") + timedelta(seconds=within_seconds))
        ),
    )
    p99 = None
    if totals["completed"] and connection.vendor == "postgresql":
        by_type = "AND saga_type = %s " if saga_type is not None else ""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT percentile_cont(0.99) WITHIN GROUP "  # noqa: S608 - table name from the model
                f"(ORDER BY extract(epoch FROM updated_at - created_at)) FROM {SagaRun._meta.db_table} "
                f"WHERE status = %s AND created_at >= %s AND created_at < %s {by_type}",
                [RunStatus.COMPLETED.value, start, end, *([saga_type] if saga_type is not None else [])],
            )
            (value,) = cursor.fetchone()
            p99 = float(value) if value is not None else None
    return {**totals, "p99_seconds": p99}


def saga_runs_for_subjects(*, subject_ids: list[str]) -> list[SagaRunDTO]:
    """Every run (any saga type) about any of these subjects, in one query."""
    subjects = [str(s) for s in subject_ids]
    return [run_to_dto(run) for run in SagaRun.objects.filter(subject_id__in=subjects).order_by("pk")]


def saga_step_log_summary(*, run_ids: list[int]) -> dict:
    """What the step log says about these runs, for a chaos report: attempts by
    outcome, steps that completed more than once (a step's effect applied twice: must
    be 0), attempts cut short by an expired lease (a worker died), and the workers
    (host part of the lease owner) that ran them. Three grouped queries."""
    logs = SagaStepLog.objects.filter(run_id__in=list(run_ids)).order_by()
    by_outcome = {row["outcome"]: row["n"] for row in logs.values("outcome").annotate(n=Count("id"))}
    done_twice = (
        logs.filter(outcome=StepOutcome.DONE)
        .values("run_id", "step", "direction")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    workers = sorted({w.split("/", 1)[0] for w in logs.values_list("worker", flat=True).distinct() if w})
    return {
        "attempts": sum(by_outcome.values()),
        "by_outcome": by_outcome,
        "steps_done_twice": [
            {"run_id": r["run_id"], "step": r["step"], "direction": r["direction"], "times": r["n"]}
            for r in done_twice[:50]
        ],
        "lease_expired": by_outcome.get(StepOutcome.LEASE_EXPIRED, 0),
        "workers": workers,
    }
