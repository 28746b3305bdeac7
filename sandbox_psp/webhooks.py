"""Webhook outbox and its delivery thread.

Events are written in the transaction that creates the charge or refund, so an
event exists exactly when its object does. One daemon thread per server process
posts due deliveries, signs each attempt with a fresh timestamp, and retries with
exponential backoff until the receiver answers 2xx (giving up after 24 h).
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import secrets
import threading
import time

import httpx
from django.conf import settings
from django.db import connection, transaction

from .faults import FaultDecision
from .models import IdempotencyKey, SandboxConfig, WebhookDelivery
from .signing import sign

logger = logging.getLogger(__name__)

GIVE_UP_AFTER_SECONDS = 24 * 3600
LEASE_SECONDS = 60
PURGE_EVERY_SECONDS = 60
_started = False
_start_lock = threading.Lock()


def webhook_url() -> str | None:
    config = SandboxConfig.objects.filter(pk=1).first()
    if config is not None:
        if config.webhooks_disabled:
            return None
        if config.webhook_url:
            return config.webhook_url
    return settings.PSP_WEBHOOK_URL


def enqueue(event_type: str, obj: dict, decision: FaultDecision, *, url: str | None = None) -> str | None:
    """Call inside the transaction that wrote `obj` (`url`: webhook_url() as the caller
    read it in that transaction or just before). Returns the event id, or None when
    no webhook URL is configured (then nothing is sent, ever)."""
    url = url or webhook_url()
    if not url:
        return None
    now = time.time()
    event_id = f"evt_{secrets.token_hex(12)}"
    payload = json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "created": int(now), "data": {"object": obj}}
    )
    jitter = settings.PSP_WEBHOOK_JITTER_MS / 1000

    def delivery(delay: float) -> WebhookDelivery:
        return WebhookDelivery(
            event_id=event_id,
            event_type=event_type,
            payload=payload,
            url=url,
            next_attempt_at=now + delay,
            created=now,
        )

    rows = [delivery(random.uniform(0, jitter))]
    if decision.duplicate_webhook:
        rows.append(delivery(random.uniform(0.05, 0.05 + 2 * jitter)))
    WebhookDelivery.objects.bulk_create(rows)
    return event_id


def _claim_due(now: float, batch: int = 20) -> list[WebhookDelivery]:
    with transaction.atomic():
        due = WebhookDelivery.objects.filter(
            delivered_at__isnull=True,
            next_attempt_at__lte=now,
            leased_until__lt=now,
            created__gte=now - GIVE_UP_AFTER_SECONDS,
        ).order_by("next_attempt_at")[:batch]
        rows = list(due.select_for_update(skip_locked=True))
        WebhookDelivery.objects.filter(pk__in=[row.pk for row in rows]).update(
            leased_until=now + LEASE_SECONDS
        )
    return rows


def _backoff(attempts: int) -> float:
    base = settings.PSP_WEBHOOK_RETRY_BASE_SECONDS * (2 ** (attempts - 1))
    return min(base, settings.PSP_WEBHOOK_RETRY_CAP_SECONDS) * random.uniform(0.8, 1.2)


def deliver(client: httpx.Client, row: WebhookDelivery) -> bool:
    body = row.payload.encode()
    headers = {
        "Content-Type": "application/json",
        "PSP-Signature": sign(body, settings.PSP_WEBHOOK_SECRET, int(time.time())),
        "User-Agent": "concord-sandbox-psp",
    }
    status, error = None, ""
    try:
        response = client.post(row.url, content=body, headers=headers)
        status = response.status_code
        if not 200 <= status < 300:
            error = response.text[:500]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    row.attempts += 1
    row.last_status = status
    row.last_error = error
    now = time.time()
    ok = status is not None and 200 <= status < 300
    if ok:
        row.delivered_at = now
        logger.info("webhook %s %s delivered (attempt %s)", row.event_type, row.event_id, row.attempts)
    else:
        row.next_attempt_at = now + _backoff(row.attempts)
        logger.info("webhook %s %s attempt %s failed: %s", row.event_type, row.event_id, row.attempts, error)
    row.leased_until = 0
    row.save(
        update_fields=[
            "attempts",
            "last_status",
            "last_error",
            "delivered_at",
            "next_attempt_at",
            "leased_until",
        ]
    )
    return ok


def _purge(now: float) -> None:
    cutoff = datetime.datetime.fromtimestamp(now - settings.PSP_IDEMPOTENCY_KEY_TTL_SECONDS, tz=datetime.UTC)
    IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    WebhookDelivery.objects.filter(created__lt=now - 2 * GIVE_UP_AFTER_SECONDS).delete()


def _loop() -> None:
    client = httpx.Client(timeout=settings.PSP_WEBHOOK_TIMEOUT_SECONDS)
    last_purge = 0.0
    while True:
        try:
            now = time.time()
            if now - last_purge > PURGE_EVERY_SECONDS:
                _purge(now)
                last_purge = now
            rows = _claim_due(now)
            for row in rows:
                deliver(client, row)
            if not rows:
                time.sleep(0.1)
        except Exception:
            logger.exception("webhook delivery loop failed; retrying")
            connection.close()
            time.sleep(1)


def start_delivery_thread() -> None:
    global _started
    with _start_lock:
        if _started or not settings.PSP_DELIVERY_THREAD:
            return
        _started = True
    threading.Thread(target=_loop, name="psp-webhooks", daemon=True).start()
