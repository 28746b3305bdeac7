"""Back-office Celery tasks: thin (DESIGN §3, STYLE "tasks are thin").

A refund the back office asked for is a pending Refund row with a fixed idempotency
key; this task asks the provider for it (payments' refund_send: the call, then the
record). Calling it again — a Celery retry, a duplicated message, a person pressing
"send again" — repeats the same provider request, which the provider replays: the
refund exists there at most once.
"""

from __future__ import annotations

from datetime import date

from celery import shared_task

from payments.choices import RefundStatus
from payments.selectors import refund_for_key
from payments.services import refund_send as payment_refund_send

from . import finance, sla


class RefundStillPending(Exception):
    """The provider did not answer for sure (timeout, 5xx, connection lost): the refund
    is still pending and the same request is sent again later."""


@shared_task(
    name="backoffice.refund_send",
    ignore_result=True,
    autoretry_for=(RefundStillPending,),
    # About 20 minutes of provider trouble (2, 4, ... 300 s, jittered); after that the
    # refund stays pending on the case file, where a person can send it again.
    max_retries=8,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
)
def refund_send(payment_id: int, idempotency_key: str) -> str:
    """Never creates a refund: an unknown key is an error (NotFound), not a new refund."""
    refund = refund_for_key(payment_id=int(payment_id), idempotency_key=str(idempotency_key))
    if refund.status != RefundStatus.PENDING:
        return f"already {refund.status}"
    sent = payment_refund_send(
        refund_id=refund.id, reason=f"back-office refund {refund.id} sent to the provider"
    )
    if sent.refund is None or sent.refund.status == RefundStatus.PENDING:
        raise RefundStillPending(f"refund {refund.id}: {sent.outcome} ({sent.error})")
    return str(sent.outcome)


@shared_task(name="backoffice.sla_escalate", ignore_result=True)
def sla_escalate() -> dict[str, int]:
    """Beat runs this every BACKOFFICE_SLA_ESCALATE_INTERVAL seconds: e-mail what waited
    past its escalation limit, each item at most once (backoffice.sla)."""
    return sla.sla_escalate()


@shared_task(name=finance.FIGURES_REFRESH_TASK, ignore_result=True)
def finance_figures_refresh(start: str | None = None, end: str | None = None) -> str:
    """Recompute and keep a range's finance figures (backoffice.finance.history_figures
    queues it when a view found them stale; on the `bulk` queue). Without a range, the
    finance page's default one (the last 30 days): beat's entry, every
    BACKOFFICE_FINANCE_WARM_SECONDS, so its kept figures never expire."""
    if start and end:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    else:
        first, last = finance.default_range()
    figures = finance.figures_refresh(start=first, end=last)
    return f"{first}..{last} at {figures['figures_at'].isoformat()}"
