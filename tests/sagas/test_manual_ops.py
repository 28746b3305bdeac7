"""Manual operations: a person and a reason, a permission, an audit trail, and
no second effect when repeated."""

import time

import pytest
from django.contrib.auth.models import Permission, User
from django_fsm_log.models import StateLog

from core.errors import ConcordError
from sagas.choices import ManualAction, RunStatus, StepOutcome
from sagas.executor import advance_run
from sagas.models import SagaAction
from sagas.selectors import (
    saga_action_log,
    saga_operations_allowed,
    saga_run_get,
    saga_runs_stuck,
    saga_step_log,
)
from sagas.services import saga_compensate, saga_mark_resolved, saga_retry_now, saga_skip_step

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def failed_run(start_run):
    """A demo.mixed run failed at its external step b (attempts exhausted)."""
    run_id = start_run("demo.mixed")
    demo.plan(run_id, "b", "retry", "retry", "retry")
    for _ in range(3):
        advance_run(run_id)
        time.sleep(0.45)
    assert saga_run_get(run_id=run_id).status == RunStatus.FAILED
    return run_id


def user_with(*codenames):
    user = User.objects.create_user(f"u-{'-'.join(codenames) or 'none'}", password="x")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="sagas", codename__in=codenames)
    )
    return User.objects.get(pk=user.pk)


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        (saga_retry_now, {}),
        (saga_compensate, {"failure_code": "cancelled_by_staff"}),
        (saga_skip_step, {}),
        (saga_mark_resolved, {}),
    ],
)
def test_every_operation_needs_a_person_a_reason_and_a_permission(failed_run, staff_user, operation, kwargs):
    with pytest.raises(ConcordError) as error:
        operation(run_id=failed_run, by=None, reason="why", **kwargs)
    assert error.value.code == "person_required"
    with pytest.raises(ConcordError) as error:
        operation(run_id=failed_run, by=staff_user, reason="  ", **kwargs)
    assert error.value.code == "reason_required"
    with pytest.raises(ConcordError) as error:
        operation(run_id=failed_run, by=user_with(), reason="why", **kwargs)
    assert error.value.code == "permission_denied"
    assert saga_run_get(run_id=failed_run).status == RunStatus.FAILED
    assert not SagaAction.objects.exists()


def test_skip_needs_its_own_permission(failed_run):
    support = user_with("retry_run", "compensate_run", "resolve_run")
    with pytest.raises(ConcordError) as error:
        saga_skip_step(run_id=failed_run, by=support, reason="charge verified by hand")
    assert error.value.code == "permission_denied"


def test_retry_now_is_audited_and_idempotent(failed_run, staff_user):
    saga_retry_now(run_id=failed_run, by=staff_user, reason="provider recovered")
    saga_retry_now(run_id=failed_run, by=staff_user, reason="provider recovered")  # double click

    run = saga_run_get(run_id=failed_run)
    assert (run.status, run.attempts) == (RunStatus.RUNNING, 0)
    [action] = saga_action_log(run_id=failed_run)
    assert (action.action, action.by_username, action.reason, action.from_status, action.to_status) == (
        ManualAction.RETRY_NOW,
        staff_user.username,
        "provider recovered",
        RunStatus.FAILED,
        RunStatus.RUNNING,
    )
    transition = StateLog.objects.get(object_id=failed_run, transition="resume")
    assert (transition.by, transition.description) == (staff_user, "provider recovered")
    assert advance_run(failed_run) == RunStatus.COMPLETED


def test_compensate_a_failed_run(failed_run, staff_user):
    saga_compensate(
        run_id=failed_run, by=staff_user, reason="customer asked", failure_code="cancelled_by_staff"
    )
    saga_compensate(
        run_id=failed_run, by=staff_user, reason="customer asked", failure_code="cancelled_by_staff"
    )

    assert advance_run(failed_run) == RunStatus.COMPENSATED
    # b's outcome was unknown: it is compensated too, then a.
    assert [r.step for r in saga_step_log(run_id=failed_run) if r.direction == "compensate"] == ["b", "a"]
    assert demo.compensated_with(failed_run) == "cancelled_by_staff"
    assert SagaAction.objects.filter(run_id=failed_run).count() == 1
    assert StateLog.objects.get(object_id=failed_run, transition="start_compensating").by == staff_user


def test_compensate_refused_on_a_completed_run(start_run, staff_user):
    run_id = start_run("demo.local")
    advance_run(run_id)
    with pytest.raises(ConcordError) as error:
        saga_compensate(run_id=run_id, by=staff_user, reason="late", failure_code="cancelled_by_staff")
    assert error.value.code == "saga_completed"


def test_skip_step_moves_past_the_failed_step_once(failed_run, staff_user):
    saga_skip_step(run_id=failed_run, by=staff_user, reason="charge verified in the provider", step="b")
    # A repeat naming the same step does not skip c as well.
    saga_skip_step(run_id=failed_run, by=staff_user, reason="charge verified in the provider", step="b")

    assert saga_run_get(run_id=failed_run).step == "c"
    assert advance_run(failed_run) == RunStatus.COMPLETED
    outcomes = [(r.step, r.outcome) for r in saga_step_log(run_id=failed_run)]
    assert ("b", StepOutcome.SKIPPED) in outcomes and ("c", StepOutcome.DONE) in outcomes
    assert demo.external_effects(failed_run) == []
    assert SagaAction.objects.filter(run_id=failed_run, action=ManualAction.SKIP_STEP).count() == 1


def test_skip_refused_on_a_running_run(start_run, staff_user):
    run_id = start_run("demo.local")
    with pytest.raises(ConcordError) as error:
        saga_skip_step(run_id=run_id, by=staff_user, reason="no")
    assert error.value.code == "saga_not_skippable"


def test_mark_resolved_takes_the_run_off_the_stuck_list(failed_run, staff_user):
    saga_mark_resolved(run_id=failed_run, by=staff_user, reason="refunded by hand, order cancelled")
    saga_mark_resolved(run_id=failed_run, by=staff_user, reason="again")

    assert saga_run_get(run_id=failed_run).status == RunStatus.RESOLVED
    assert failed_run not in [r.id for r in saga_runs_stuck()]
    assert [a.reason for a in saga_action_log(run_id=failed_run)] == ["refunded by hand, order cancelled"]
    assert StateLog.objects.get(object_id=failed_run, state=RunStatus.RESOLVED).by == staff_user
    with pytest.raises(ConcordError) as error:
        saga_retry_now(run_id=failed_run, by=staff_user, reason="x")
    assert error.value.code == "saga_not_retryable"


def test_operations_offered_only_when_legal(failed_run, start_run, staff_user):
    assert saga_operations_allowed(run=saga_run_get(run_id=failed_run), user=staff_user) == [
        ManualAction.RETRY_NOW,
        ManualAction.COMPENSATE,
        ManualAction.SKIP_STEP,
        ManualAction.MARK_RESOLVED,
    ]
    assert saga_operations_allowed(run=saga_run_get(run_id=failed_run), user=user_with("retry_run")) == [
        ManualAction.RETRY_NOW
    ]
    done = start_run("demo.local")
    advance_run(done)
    assert saga_operations_allowed(run=saga_run_get(run_id=done), user=staff_user) == []
