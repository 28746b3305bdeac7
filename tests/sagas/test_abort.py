"""An abort (client or staff cancel) makes the run compensate at its next step."""

import threading
import time

import pytest
from django.db import connections

from core.errors import ConcordError
from sagas.choices import RunStatus, StepOutcome
from sagas.executor import advance_run
from sagas.models import SagaAction
from sagas.selectors import saga_run_get, saga_step_log
from sagas.services import saga_request_abort

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def test_abort_during_an_external_step_compensates_that_step_too(start_run):
    # The race "charge succeeded" vs "cancel requested" must end in a refund.
    run_id = start_run("demo.mixed")
    demo.plan(run_id, "b", "effect_then_sleep:0.6")
    result = {}

    def worker():
        result["status"] = advance_run(run_id)
        connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.3)  # inside b's call: effect made, checkpoint not yet
    saga_request_abort(run_id=run_id, failure_code="cancelled_by_client", reason="client cancelled")
    thread.join(10)

    assert result["status"] == RunStatus.COMPENSATED
    assert demo.external_effects(run_id) == ["b", "undo_b"]
    assert demo.local_effects(run_id) == ["a", "compensated", "undo_a"]
    assert demo.compensated_with(run_id) == "cancelled_by_client"
    assert "c" not in {row.step for row in saga_step_log(run_id=run_id)}


def test_abort_while_waiting_for_a_retry_compensates_the_attempted_step(start_run):
    run_id = start_run("demo.mixed")
    demo.plan(run_id, "b", "retry")  # an unknown outcome: b may have taken effect
    advance_run(run_id)

    saga_request_abort(run_id=run_id, failure_code="cancelled_by_staff", reason="ticket 12")
    # The abort makes the run due at once, no waiting out the backoff.
    assert advance_run(run_id) == RunStatus.COMPENSATED

    compensations = [r.step for r in saga_step_log(run_id=run_id) if r.direction == "compensate"]
    assert compensations == ["b", "a"]
    assert saga_run_get(run_id=run_id).failure_code == "cancelled_by_staff"


def test_abort_before_a_step_is_attempted_skips_it(start_run):
    run_id = start_run("demo.local")

    saga_request_abort(run_id=run_id, failure_code="cancelled_by_client", reason="changed my mind")
    assert advance_run(run_id) == RunStatus.COMPENSATED

    assert demo.calls(run_id, "a") == 0
    assert [r.outcome for r in saga_step_log(run_id=run_id)] == []
    assert demo.compensated_with(run_id) == "cancelled_by_client"


def test_abort_is_idempotent_and_audited(start_run):
    run_id = start_run("demo.local")

    saga_request_abort(run_id=run_id, failure_code="cancelled_by_client", reason="first")
    saga_request_abort(run_id=run_id, failure_code="cancelled_by_staff", reason="second")

    run = saga_run_get(run_id=run_id)
    assert run.abort_requested and run.failure_code == "cancelled_by_client"
    action = SagaAction.objects.get(run_id=run_id)
    assert (action.action, action.reason, action.by_id) == ("request_abort", "first", None)


def test_abort_refused_once_completed(start_run):
    run_id = start_run("demo.local")
    advance_run(run_id)

    with pytest.raises(ConcordError) as error:
        saga_request_abort(run_id=run_id, failure_code="cancelled_by_client", reason="too late")
    assert error.value.code == "saga_completed"


def test_abort_of_a_failed_run_compensates_it(start_run):
    run_id = start_run("demo.local")
    demo.plan(run_id, "a", "retry", "retry", "retry")
    for _ in range(3):
        advance_run(run_id)
        time.sleep(0.45)
    assert saga_run_get(run_id=run_id).status == RunStatus.FAILED

    saga_request_abort(run_id=run_id, failure_code="cancelled_by_client", reason="give up")
    assert advance_run(run_id) == RunStatus.COMPENSATED
    # a's outcome was unknown: its compensation runs (and finds nothing to undo).
    assert [r.outcome for r in saga_step_log(run_id=run_id) if r.direction == "compensate"] == [
        StepOutcome.DONE
    ]
