"""Payments' Celery tasks: thin (DESIGN §3, STYLE "tasks are thin").

`payments.refunds_resume` (beat, every PAYMENTS_REFUND_SWEEP_INTERVAL seconds) is the
sweeper that makes a refund a durable intent (issue 14): see
payments.services.refunds_resume.
"""

from __future__ import annotations

from celery import shared_task

from .services import refunds_resume as resume


@shared_task(name="payments.refunds_resume", ignore_result=True)
def refunds_resume() -> str:
    resumed = resume()
    return f"{len(resumed)} pending refund(s) sent again: " + ", ".join(
        f"{r.refund_id} {r.status}" for r in resumed
    )
