"""Sending deliveries: claim (short transaction), call (no transaction), record
(short transaction) — the call/record split of the provider charge.

Order per order: a delivery is claimable only when no earlier delivery of the same
order to the same endpoint is still pending, so an endpoint that was down gets
everything afterwards in commit order per order. Retry timing is next_attempt_at
(the schedule in webhooks.conf, with jitter), never a Celery ETA. A sender killed
mid-call loses nothing: its lease expires and the next claim sends again with the
same webhook-id (shops deduplicate on it: at least once).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.db import connection, transaction
from django.utils import timezone

from . import conf
from .models import ClientEvent, DeliveryStatus, EndpointStatus, WebhookDelivery, WebhookEndpoint
from .signing import signed_headers
from .validation import check_address

log = logging.getLogger(__name__)

CLAIM_BATCH = 20
USER_AGENT = "Concord-Webhooks/1"

_D = WebhookDelivery._meta.db_table
_E = WebhookEndpoint._meta.db_table
_CLAIM_SQL = f"""
UPDATE {_D} SET leased_until = %(lease)s
WHERE id IN (
    SELECT d.id FROM {_D} d JOIN {_E} e ON e.id = d.endpoint_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s
      AND (d.leased_until IS NULL OR d.leased_until <= %(now)s)
      AND e.status = 'enabled'
      AND NOT EXISTS (
          SELECT 1 FROM {_D} p
          WHERE p.endpoint_id = d.endpoint_id AND p.order_id = d.order_id
            AND p.status = 'pending' AND p.sequence < d.sequence
      )
    ORDER BY d.next_attempt_at, d.sequence
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
RETURNING id, next_attempt_at, sequence
"""  # noqa: S608 - table names from the models


def deliveries_claim(*, limit: int = CLAIM_BATCH, now: datetime | None = None) -> list[int]:
    """Lease up to `limit` due deliveries (one statement, its own transaction)."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=conf.timeout() * 2 + 5)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"lease": lease, "now": now, "limit": limit})
        # RETURNING comes in no particular order: send the longest-waiting first.
        return [row[0] for row in sorted(cursor.fetchall(), key=lambda r: (r[1], r[2]))]


def event_body(event: ClientEvent) -> str:
    """The JSON shops receive (and GET /api/v1/events/ lists), Stripe-like."""
    return json.dumps(event_json(event), separators=(",", ":"))


def event_json(event: ClientEvent) -> dict:
    return {
        "id": str(event.event_id),
        "type": event.type,
        "created": int(event.created_at.timestamp()),
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }


@dataclass(frozen=True)
class CallResult:
    ok: bool
    status_code: int | None
    error: str
    duration_ms: int


def _call(delivery: WebhookDelivery) -> CallResult:
    endpoint, event = delivery.endpoint, delivery.event
    parts = urlsplit(endpoint.url)
    started = time.monotonic()
    why_not = check_address(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    if why_not:
        return CallResult(False, None, why_not, 0)
    body = event_body(event)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signed_headers(secret=endpoint.secret, msg_id=str(event.event_id), body=body, at=timezone.now()),
    }
    try:
        response = httpx.post(
            endpoint.url,
            content=body.encode(),
            headers=headers,
            timeout=httpx.Timeout(conf.timeout(), connect=min(3.0, conf.timeout())),
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return CallResult(False, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
    ok = 200 <= response.status_code < 300
    body = response.text[:200].strip()
    error = "" if ok else f"HTTP {response.status_code}" + (f": {body}" if body else "")
    return CallResult(ok, response.status_code, error, _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _next_wait(attempts: int) -> float | None:
    """Seconds before the next attempt after `attempts` failed ones, or None: give up."""
    schedule = conf.retry_schedule()
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * random.uniform(0.9, 1.1)


def _record(delivery_id: int, result: CallResult) -> WebhookDelivery:
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery_id)
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        if delivery.status != DeliveryStatus.PENDING:
            return delivery  # replayed, cancelled or recorded meanwhile
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.last_status_code = result.status_code
        delivery.leased_until = None
        if result.ok:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.delivered_at = now
            delivery.last_error = ""
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
                endpoint.save(update_fields=["failing_since", "updated_at"])
        else:
            delivery.last_error = result.error
            wait = _next_wait(delivery.attempts)
            if endpoint.failing_since is None:
                endpoint.failing_since = now
                endpoint.save(update_fields=["failing_since", "updated_at"])
            if wait is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
                _disable(endpoint, delivery, now)
            else:
                delivery.next_attempt_at = now + timedelta(seconds=wait)
        delivery.save()
    return delivery


def _disable(endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime) -> None:
    """Persistent failure: every attempt of the schedule failed. Later deliveries stay
    pending (in order) until the endpoint is enabled again (a replay does that)."""
    if endpoint.status != EndpointStatus.ENABLED:
        return
    since = endpoint.failing_since or now
    endpoint.status = EndpointStatus.DISABLED
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"Delivery {delivery.pk} ({delivery.event.type}) failed {delivery.attempts} times since "
        f"{since:%Y-%m-%d %H:%M} UTC; last error: {delivery.last_error}"
    )[:2000]
    endpoint.save(update_fields=["status", "disabled_at", "disabled_reason", "updated_at"])
    log.warning("webhook endpoint %s disabled: %s", endpoint.pk, endpoint.disabled_reason)


def delivery_send(delivery_id: int) -> WebhookDelivery:
    """Send one claimed delivery and record the outcome. Never inside a transaction."""
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    result = _call(delivery)
    if not result.ok:
        log.info("webhook delivery %s failed: %s", delivery_id, result.error)
    return _record(delivery_id, result)


def deliver_due(*, budget: float = 20.0) -> int:
    """Claim and send due deliveries until none is due or the budget is spent."""
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < budget:
        claimed = deliveries_claim()
        if not claimed:
            break
        for delivery_id in claimed:
            delivery_send(delivery_id)
            sent += 1
    return sent
