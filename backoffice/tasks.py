"""Back-office Celery tasks: thin (DESIGN §3, STYLE "tasks are thin").

A refund the back office asked for is a pending Refund row with a fixed idempotency
key; this task asks the provider for it. Calling it again — a Celery retry, a
duplicated message, a person pressing "send again" — repeats the same provider
request, which the provider replays: the refund exists there at most once.
"""

from __future__ import annotations

from celery import shared_task

from . import services


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
    sent = services.refund_send(payment_id=int(payment_id), idempotency_key=str(idempotency_key))
    if sent.pending:
        raise RefundStillPending(f"refund {sent.refund_id}: {sent.outcome} ({sent.error})")
    return sent.outcome
