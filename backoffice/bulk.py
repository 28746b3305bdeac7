"""Bulk actions by filter: one staff action over every saga run or incident a filter
matches ("retry all 3,214 runs failed at charge_payment with HTTP 500 since 14:02").

    list_filters(page, data, user)  the list pages' filters -> selector arguments
    bulk_preview(...)               how many, how much money, what each will do (reads only)
    bulk_start(...)                 a durable job: one BulkJob, one BulkItem per target
    bulk_run_chunk(...)             a worker runs items for a while (backoffice.tasks.bulk_run)
    bulk_jobs_stale()               jobs whose worker died (the sweeper re-queues them)
    bulk_stop(...)                  a person stops a job; items not started stay undone

Each item goes through the one flow of backoffice.services, as the person who started
the job, with the job's reason: the operation's permission, that it is offered on that
item now, the approval rule (an item above the threshold waits for finance, alone) and
one StaffAction per item, whose one-time key is `bulk:<job>:<subject>`.

Exactly once per item, even when a worker dies: an action that stays in the database
(retry, compensate, acknowledge, assign, dismiss) commits in one transaction with its
StaffAction and the item's new state, so either all of it happened or none did. An
action that calls the provider (a remediation, a resolution's re-check) claims its key
first; if the worker died during the call, the resumed item meets the claimed key and
runs the operation again only when it is still offered — those operations are
once-only themselves (reconciliation's remediation key).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from celery import current_app
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from core.audit import check_person_and_reason
from core.errors import ConcordError, NotFound
from core.sql import insert_unless_exists
from orders.selectors import order_totals
from reconciliation.choices import IncidentState
from reconciliation.selectors import IncidentRow, incidents_count, incidents_matching
from reconciliation.services import remediation_actions_by_type
from sagas.dto import SagaRunDTO
from sagas.selectors import saga_runs_by_ids, saga_runs_count, saga_runs_matching

from . import services
from .conf import approval_threshold, bulk_lease_seconds, bulk_max_items
from .models import BulkItem, BulkItemState, BulkJob, BulkJobState, StaffAction
from .operations import (
    Case,
    IncidentCase,
    Operation,
    RunsCase,
    needs_approval,
    operation_for,
    parse_amount,
    remediation_label,
)
from .roles import support_person_get
from .selectors import incident_case

logger = logging.getLogger(__name__)

SAGA, INCIDENT = "saga", "incident"
BULK_RUN = "backoffice.bulk_run"  # the task (backoffice.bulk_tasks)
# The actions that may run in bulk, per list: each is an operation of the registry
# (the saga ones are declared on the order page, the incident ones on the incident page).
BULK_OPS: dict[str, tuple[str, ...]] = {
    SAGA: ("retry_now", "compensate"),
    INCIDENT: ("acknowledge", "assign_me", "assign", "dismiss", "remediate"),
}
_REGISTRY_PAGE = {SAGA: "order", INCIDENT: "incident"}
SAMPLES = 3  # items whose own preview the bulk preview shows
PREVIEW_ROWS = 50  # items listed on the preview page
BATCH = 50  # items per transaction (database-only actions)

# The filters of each list, as the forms name them.
FILTER_FIELDS: dict[str, tuple[str, ...]] = {
    SAGA: ("status", "saga_type", "step", "error", "older_than_minutes", "since", "all"),
    INCIDENT: ("type", "severity", "state", "older_than_minutes", "since", "min_amount", "mine"),
}


# --- filters --------------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_since(raw: str) -> datetime | None:
    """ "2026-11-30T14:02" (the browser's datetime-local) or "14:02" (today), in the
    site's time zone. Anything else is refused with `since_invalid`."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        if len(raw) <= 5 and ":" in raw:
            hour, minute = (int(part) for part in raw.split(":"))
            moment = timezone.localtime().replace(hour=hour, minute=minute, second=0, microsecond=0)
        else:
            moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ConcordError(
            f"{raw!r} is not a time: use YYYY-MM-DD HH:MM or HH:MM.", code="since_invalid"
        ) from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def list_filters(page: str, data: Any, user: Any, *, statuses: tuple[str, ...] = ()) -> dict[str, Any]:
    """The selector arguments of a list's filters (saga_runs_list / incidents_list and
    their _count and _matching). Bad input raises its ConcordError."""
    older = _int(data.get("older_than_minutes"))
    before = timezone.now() - timedelta(minutes=older) if older else None
    since = parse_since(data.get("since") or "")
    if page == SAGA:
        status = data.get("status") or ""
        return {
            "statuses": [status] if status in statuses else None,
            "saga_type": data.get("saga_type") or None,
            "step": data.get("step") or None,
            "error_contains": data.get("error") or None,
            "created_before": before,
            "changed_since": since,
            "stuck_only": data.get("all") != "1",
        }
    state = data.get("state")
    return {
        "types": [data["type"]] if data.get("type") else None,
        "severities": [data["severity"]] if data.get("severity") else None,
        "states": [state] if state in IncidentState.values else None,
        "detected_before": before,
        "detected_since": since,
        "min_amount": parse_amount(data["min_amount"]) if data.get("min_amount") else None,
        "assigned_to_id": user.pk if data.get("mine") == "1" else None,
    }


def filter_values(page: str, data: Any) -> dict[str, str]:
    """The filters as typed, for hidden fields and the job's page."""
    return {name: str(data.get(name)) for name in FILTER_FIELDS[page] if data.get(name)}


# --- preview --------------------------------------------------------------------------------------------


def bulk_operation(page: str, op: str) -> Operation:
    operation = operation_for(_REGISTRY_PAGE.get(page, ""), op) if op in BULK_OPS.get(page, ()) else None
    if operation is None:
        raise services.NotOffered("That action cannot run in bulk.", details={"page": page, "op": op})
    return operation


@dataclass(frozen=True)
class Sample:
    title: str
    effects: list[Any]
    needs_approval: bool = False


@dataclass
class Plan:
    """What a bulk action would do now: `rows` are the first matches with whether the
    action is offered on each; `eligible` every target id it would run on."""

    page: str
    op: str
    operation: Operation
    params: dict[str, Any]
    matched: int  # every match, even past the cap
    eligible: list[int]
    orders: dict[int, int | None]  # target -> order id
    rows: list[tuple[Any, bool]]
    money: dict[str, Decimal]
    samples: list[Sample] = field(default_factory=list)
    over_threshold: int = 0  # targets whose amount is above the approval threshold
    capped: bool = False

    @property
    def label(self) -> str:
        action = self.params.get("action")
        if self.op == "remediate":
            return (
                f"Remediate: {remediation_label(action)}"
                if action
                else "Remediate (each one's suggested fix)"
            )
        if self.op == "assign":
            person = support_person_get(int(self.params["assignee_id"]))
            return f"Assign to {person.get_username() if person else self.params['assignee_id']}"
        return self.operation.label

    @property
    def skipped(self) -> int:
        return min(self.matched, bulk_max_items()) - len(self.eligible)


def _incident_case_from_row(row: IncidentRow, by_type: dict[str, tuple[str, ...]]) -> IncidentCase:
    # The list row stands in for the record: offers are decided on the state and the
    # type's remediations. Each item is checked again on its full case when it runs.
    return IncidentCase(incident=row, remediations=by_type.get(row.type, ()))  # type: ignore[arg-type]


def _item_params(operation: Operation, case: Case, job_params: dict[str, Any], target: int) -> dict[str, Any]:
    if isinstance(case, RunsCase):
        return {"run_id": target}
    if operation.op == "remediate":
        action = job_params.get("action") or (case.remediations[0] if case.remediations else "")
        return {"action": action}
    return operation.params_from(job_params)


def _job_params(operation: Operation, data: Any) -> dict[str, Any]:
    """What every item shares: the chosen remediation, or the operation's own inputs (the
    assignee), checked once here so a bad one is a message, not a job of failed items."""
    if operation.op == "remediate":
        return {"action": str(data.get("action") or "")}
    params = {item.name: str(data.get(item.name, "")).strip() for item in operation.inputs}
    if operation.check is not None:
        operation.check(params)
    return params


def bulk_preview(*, page: str, op: str, data: Any, by: Any, statuses: tuple[str, ...] = ()) -> Plan:
    """Reads only. Raises NotOffered for an action that cannot run in bulk or that the
    person may not run, and the filters' ConcordErrors."""
    operation = bulk_operation(page, op)
    if not operation.may(by):
        raise services.NotOffered("You may not do that.", details={"op": op})
    query = list_filters(page, data, by, statuses=statuses)
    params = _job_params(operation, data)
    cap = bulk_max_items()
    over_threshold = 0
    if page == SAGA:
        matched = saga_runs_count(**query)
        runs = saga_runs_matching(cap=cap, **query)
        offered = {o.params["run_id"] for o in operation.offers(RunsCase(runs=tuple(runs)), by)}
        eligible_runs = [run for run in runs if run.id in offered]
        orders = {run.id: _int(run.subject_id) for run in eligible_runs}
        money: dict[str, Decimal] = defaultdict(Decimal)
        for total, currency in order_totals(order_ids=[o for o in orders.values() if o]).values():
            money[currency] += total
        eligible = [r.id for r in eligible_runs]
        rows: list[tuple[Any, bool]] = [(run, run.id in offered) for run in runs[:PREVIEW_ROWS]]
        cases: list[tuple[int, Case]] = [(run.id, RunsCase(runs=(run,))) for run in eligible_runs[:SAMPLES]]
    else:
        matched = incidents_count(**query)
        incidents = incidents_matching(cap=cap, **query)
        by_type = remediation_actions_by_type()
        action = params.get("action")
        ok: dict[int, bool] = {}
        for row in incidents:
            case = _incident_case_from_row(row, by_type)
            wanted = _item_params(operation, case, params, row.id)
            ok[row.id] = operation.offer_for(case, by, wanted) is not None and (
                op != "remediate" or not action or action in case.remediations
            )
        eligible_rows = [row for row in incidents if ok[row.id]]
        money = defaultdict(Decimal)
        for row in eligible_rows:
            money[row.currency] += row.amount_at_risk
        eligible = [r.id for r in eligible_rows]
        orders = {r.id: r.order_id for r in eligible_rows}
        rows = [(r, ok[r.id]) for r in incidents[:PREVIEW_ROWS]]
        if operation.approval_kind:
            over_threshold = sum(1 for r in eligible_rows if r.amount_at_risk > approval_threshold())
        cases = []
        for row in eligible_rows[:SAMPLES]:
            try:
                cases.append((row.id, incident_case(incident_id=row.id)))
            except NotFound:
                continue
    return Plan(
        page, op, operation, params, matched, eligible, orders, rows, dict(money),
        samples=[_sample(operation, case, params, target, by) for target, case in cases],
        over_threshold=over_threshold, capped=matched > cap,
    )  # fmt: skip


def _sample(operation: Operation, case: Case, job_params: dict[str, Any], target: int, by: Any) -> Sample:
    title = f"Saga run #{target}" if isinstance(case, RunsCase) else f"Incident #{target}"
    if operation.preview is None:
        return Sample(title, [f"{operation.label}."])
    try:
        preview = operation.preview(case, _item_params(operation, case, job_params, target))
    except ConcordError as exc:
        return Sample(title, [f"Not possible: {exc.message}"])
    effects = list(preview.effects) if preview.allowed else [f"Not possible: {preview.why_not}"]
    return Sample(title, effects, needs_approval(operation, case, preview, by))


# --- start ----------------------------------------------------------------------------------------------


def bulk_start(
    *, page: str, op: str, data: Any, by: Any, reason: str, action_key: str, statuses: tuple[str, ...] = ()
) -> int:
    """A durable job over every target the filters match now and the action is offered
    on; a worker runs it once committed. The confirm form's one-time key makes a second
    submit return the same job. Returns the job's id."""
    reason = check_person_and_reason(by, reason)
    if not isinstance(action_key, str) or not 1 <= len(action_key) <= services.MAX_KEY:
        raise ConcordError("The form has expired; open it again.", code="action_key_invalid")
    existing = BulkJob.objects.filter(key=action_key).values_list("pk", flat=True).first()
    if existing is not None:
        return existing
    plan = bulk_preview(page=page, op=op, data=data, by=by, statuses=statuses)
    if not plan.eligible:
        raise ConcordError("Nothing to do: the action is not possible on any match now.", code="bulk_empty")
    with transaction.atomic():
        job = BulkJob(
            key=action_key,
            page=page,
            op=op,
            label=plan.label[:128],
            params=plan.params,
            filters=filter_values(page, data),
            money={currency: str(amount) for currency, amount in plan.money.items()},
            reason=reason,
            created_by=by,
            total=len(plan.eligible),
            heartbeat_at=timezone.now(),
        )
        if not insert_unless_exists(job, conflict=["key"]):
            return BulkJob.objects.get(key=action_key).pk
        BulkItem.objects.bulk_create(
            [
                BulkItem(
                    job=job,
                    subject_id=target,
                    order_id=plan.orders.get(target),
                    action_key=f"bulk:{job.pk}:{target}",
                )
                for target in plan.eligible
            ],
            batch_size=2000,
        )
        job_id = job.pk
        # By name (backoffice.bulk_tasks imports this module); robust: a broker error
        # leaves the job to the sweeper, never breaks the request.
        transaction.on_commit(lambda: current_app.send_task(BULK_RUN, args=[job_id]), robust=True)
    return job_id


def bulk_stop(*, job_id: int, by: Any) -> None:
    """Items already done stay done; the others are not started."""
    job = BulkJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Bulk job {job_id} does not exist.", code="bulk_job_not_found")
    if job.created_by_id != by.pk and not by.has_perm("backoffice.approve_refund"):
        raise ConcordError(
            "Only the person who started it (or finance) may stop it.", code="permission_denied"
        )
    BulkJob.objects.filter(pk=job_id, state=BulkJobState.RUNNING).update(
        state=BulkJobState.STOPPED, finished_at=timezone.now()
    )


# --- run --------------------------------------------------------------------------------------------------


def _take_lease(job_id: int, owner: str) -> bool:
    now = timezone.now()
    return bool(
        BulkJob.objects.filter(pk=job_id, state=BulkJobState.RUNNING)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner))
        .update(
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=bulk_lease_seconds()),
            heartbeat_at=now,
        )
    )


def _release(job_id: int, owner: str) -> None:
    BulkJob.objects.filter(pk=job_id, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None, heartbeat_at=timezone.now()
    )


def bulk_run_chunk(*, job_id: int, owner: str, budget: float) -> bool:
    """Run the job's items for about `budget` seconds. True when items are left (the
    caller queues the next chunk); False when the job is finished, stopped, or another
    worker holds it."""
    if not _take_lease(job_id, owner):
        return False
    job = BulkJob.objects.select_related("created_by").get(pk=job_id)
    operation = bulk_operation(job.page, job.op)
    deadline = time.monotonic() + budget
    while True:  # at least one batch per chunk
        batch = list(
            job.items.filter(state__in=(BulkItemState.PENDING, BulkItemState.RUNNING))
            .order_by("id")
            .values_list("pk", flat=True)[:BATCH]
        )
        if not batch:
            BulkJob.objects.filter(pk=job_id, state=BulkJobState.RUNNING).update(
                state=BulkJobState.FINISHED, finished_at=timezone.now(), lease_owner="", lease_expires_at=None
            )
            return False
        _run_batch(job, operation, batch)
        if not _take_lease(job_id, owner):  # stopped, or the lease was lost: leave it to the holder
            return False
        if time.monotonic() >= deadline:
            break
    _release(job_id, owner)
    return True


def _claimed(job: BulkJob, operation: Operation):
    """Audit rows of this job's items: its operation, by its starter. A row with an
    item's key written by anything else (a forged form key) does not count as done."""
    return StaffAction.objects.filter(user_id=job.created_by_id, action=operation.name)


def _run_batch(job: BulkJob, operation: Operation, batch: list[int]) -> None:
    if operation.calls_provider:
        for item_id in batch:
            _run_provider_item(job, operation, item_id)
        return
    # Database-only actions: the batch commits once (one commit, not fifty), each item
    # in a savepoint of its own; its action, audit row and state commit together.
    with transaction.atomic():
        items = list(
            BulkItem.objects.select_for_update()
            .filter(pk__in=batch, state=BulkItemState.PENDING)
            .order_by("id")
        )
        claimed = set(
            _claimed(job, operation)
            .filter(key__in=[i.action_key for i in items])
            .values_list("key", flat=True)
        )
        runs = (
            {run.id: run for run in saga_runs_by_ids(run_ids=[i.subject_id for i in items])}
            if job.page == SAGA
            else {}
        )
        for item in items:
            run = runs.get(item.subject_id)
            try:
                with transaction.atomic():
                    item.state, item.outcome = _attempt(
                        job, operation, item, resumed=False, claimed=item.action_key in claimed,
                        case=RunsCase(runs=(run,)) if run is not None else None,
                    )  # fmt: skip
                    item.save(update_fields=["state", "outcome", "updated_at"])
            except Exception as exc:  # a bug on one item must not stop the others
                logger.exception("bulk job %s: item %s failed", job.pk, item.pk)
                item.state, item.outcome = BulkItemState.FAILED, f"error: {type(exc).__name__}"
                item.save(update_fields=["state", "outcome", "updated_at"])


def _run_provider_item(job: BulkJob, operation: Operation, item_id: int) -> None:
    """Marked started (committed) first; the call runs outside any transaction."""
    try:
        with transaction.atomic():
            item = BulkItem.objects.select_for_update().get(pk=item_id)
            resumed = item.state == BulkItemState.RUNNING
            if item.state not in (BulkItemState.PENDING, BulkItemState.RUNNING):
                return
            item.state = BulkItemState.RUNNING
            item.save(update_fields=["state", "updated_at"])
        claimed = _claimed(job, operation).filter(key=item.action_key).exists()
        state, outcome = _attempt(job, operation, item, resumed=resumed, claimed=claimed)
    except Exception as exc:  # a bug or a lost database on one item must not stop the others
        logger.exception("bulk job %s: item %s failed", job.pk, item_id)
        state, outcome = BulkItemState.FAILED, f"error: {type(exc).__name__}"
    BulkItem.objects.filter(pk=item_id).update(state=state, outcome=outcome, updated_at=timezone.now())


def _case(job: BulkJob, item: BulkItem) -> Case:
    if job.page == SAGA:
        runs: list[SagaRunDTO] = saga_runs_by_ids(run_ids=[item.subject_id])
        if not runs:
            raise NotFound(f"Saga run {item.subject_id} does not exist.", code="saga_not_found")
        return RunsCase(runs=tuple(runs))
    return incident_case(incident_id=item.subject_id)


def _attempt(
    job: BulkJob,
    operation: Operation,
    item: BulkItem,
    *,
    resumed: bool,
    claimed: bool,
    case: Case | None = None,
) -> tuple[str, str]:
    """Run one item. `claimed`: its StaffAction key is taken, i.e. its action ran before
    (a worker died after it); `resumed`: a provider call was started and not finished."""
    by = job.created_by
    reason = f"{job.reason} (bulk job #{job.pk})"
    try:
        case = case or _case(job, item)
        params = _item_params(operation, case, job.params, item.subject_id)
        if claimed:
            if resumed and operation.calls_provider and operation.offer_for(case, by, params) is not None:
                # The worker died during the provider call: the operation is once-only
                # itself, so running it again finishes it or returns the first result.
                outcome = operation.run(case, params, by, reason, item.action_key)
                return (
                    BulkItemState.FAILED if outcome.level == "error" else BulkItemState.DONE
                ), outcome.message
            return BulkItemState.DONE, "Done before the worker stopped; not done twice."
        submitted = services.case_operation_submit(
            operation=operation, case=case, params=params, by=by, reason=reason, action_key=item.action_key
        )
    except services.AlreadySubmitted:
        # Its key was taken by something else than this job's own action (a forged form key).
        return BulkItemState.FAILED, "Its audit key was used by another action: not run; check it by hand."
    except services.NotOffered as exc:
        return BulkItemState.SKIPPED, exc.message
    except ConcordError as exc:
        return BulkItemState.FAILED, f"{exc.code}: {exc.message}"
    if submitted.approval_id is not None:
        return BulkItemState.APPROVAL, f"Waits for finance approval (request #{submitted.approval_id})."
    assert submitted.outcome is not None
    if submitted.outcome.level == "error":
        return BulkItemState.FAILED, submitted.outcome.message
    return BulkItemState.DONE, submitted.outcome.message


def bulk_jobs_stale(*, now: datetime | None = None) -> list[int]:
    """Running jobs no worker holds: the lease ran out (the worker died), or the next
    chunk was queued but never started (a lost message) for longer than a lease."""
    now = now or timezone.now()
    quiet = now - timedelta(seconds=bulk_lease_seconds())
    return list(
        BulkJob.objects.filter(state=BulkJobState.RUNNING)
        .filter(
            Q(lease_expires_at__lt=now)
            | Q(lease_expires_at__isnull=True, heartbeat_at__lt=quiet)
            | Q(lease_expires_at__isnull=True, heartbeat_at__isnull=True)
        )
        .values_list("pk", flat=True)
    )


# --- reads for the pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    job: BulkJob
    counts: dict[str, int]

    @property
    def processed(self) -> int:
        return (
            self.job.total
            - self.counts.get(BulkItemState.PENDING, 0)
            - self.counts.get(BulkItemState.RUNNING, 0)
        )

    @property
    def percent(self) -> int:
        return int(100 * self.processed / self.job.total) if self.job.total else 100


def bulk_job_progress(*, job_id: int) -> Progress:
    job = BulkJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Bulk job {job_id} does not exist.", code="bulk_job_not_found")
    counts = dict(job.items.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    return Progress(job, {state: counts.get(state, 0) for state in BulkItemState.values})


def bulk_items(*, job_id: int, state: str | None, limit: int, offset: int) -> tuple[list[BulkItem], int]:
    qs = BulkItem.objects.filter(job_id=job_id)
    if state:
        qs = qs.filter(state=state)
    return list(qs.order_by("id")[offset : offset + limit]), qs.count()


def bulk_jobs_list(*, limit: int, offset: int) -> tuple[list[BulkJob], int]:
    qs = BulkJob.objects.select_related("created_by").order_by("-id")
    return list(qs[offset : offset + limit]), qs.count()
