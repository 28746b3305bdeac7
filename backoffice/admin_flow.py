"""The back office's flow, offered to the admin (core.staff_flow; issue 13, item 5).

The order admin's "cancel confirmed order" and the saga admin's manual operations run
here exactly as on the case file: the same registered operation (its permission, that
it is offered now), a person and a reason, a StaffAction row, and the approval rule —
a cancellation above the threshold waits for finance instead of running.
"""

from __future__ import annotations

import uuid
from typing import Any

from core.staff_flow import ORDER_CANCEL, SAGA_OPERATE, staff_flow_provide

from . import services


def _admin_key() -> str:
    # The admin has no one-time form key; each submission is its own action. A repeat
    # is refused by the operation's own guard (no longer offered, once-only service).
    return f"admin-{uuid.uuid4().hex}"


def _said(submitted: services.Submitted) -> str:
    if submitted.approval_id is not None:
        return f"{submitted.label}: waits for finance approval (request #{submitted.approval_id})."
    assert submitted.outcome is not None
    return submitted.outcome.message


def admin_order_cancel(*, order_id: int, by: Any, reason: str) -> str:
    submitted = services.operation_submit(
        page="order", subject_id=order_id, op="cancel", data={}, by=by, reason=reason, action_key=_admin_key()
    )
    return _said(submitted)


def admin_saga_operate(*, run_id: int, op: str, by: Any, reason: str) -> str:
    return _said(
        services.saga_run_operation_submit(
            op=op, run_id=run_id, by=by, reason=reason, action_key=_admin_key()
        )
    )


def provide() -> None:
    staff_flow_provide(ORDER_CANCEL, admin_order_cancel)
    staff_flow_provide(SAGA_OPERATE, admin_saga_operate)
