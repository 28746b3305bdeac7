"""Gauges computed from the database and the broker when /metrics is scraped.

Every number is a handful of aggregate queries over small, indexed sets (live
incidents, active and attention saga runs, the last reconciliation run) and two
Redis commands per queue — never a loop over rows — and the result is kept
METRICS_STATE_TTL seconds per process, so scrapes from several Prometheus servers
or a dashboard refresh cost one computation.

If the database or the broker cannot be read, the families of that source are
left out and `concord_state_up{source=...}` says 0: /metrics itself still answers
with the process families (that is how an operator sees *why* the numbers stopped).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cached: tuple[float, list] = (0.0, [])
_redis_clients: dict[str, object] = {}

# slo label -> settings.SLO key; the alert rules compare against these targets.
SLO_TARGETS = {
    "order_confirm_seconds": "ORDER_CONFIRM_SECONDS",
    "sagas_stuck_per_1000": "SAGAS_STUCK_PER_1000",
    "money_at_risk_max_age_seconds": "MONEY_AT_RISK_MAX_AGE_SECONDS",
    "refund_incidents_per_1000": "REFUND_INCIDENTS_PER_1000",
}


class StateCollector:
    def collect(self):
        global _cached
        with _lock:
            expires, families = _cached
            if time.monotonic() >= expires:
                families = _collect()
                _cached = (time.monotonic() + float(settings.METRICS_STATE_TTL), families)
        yield from families


def reset_cache() -> None:
    """Tests: the next scrape recomputes."""
    global _cached
    with _lock:
        _cached = (0.0, [])


def _collect() -> list:
    started = time.monotonic()
    families: list = []
    up = GaugeMetricFamily(
        "concord_state_up", "1 if the source could be read for this scrape.", labels=["source"]
    )
    for source, collect in (("database", _database), ("broker", _broker)):
        try:
            families.extend(collect())
            up.add_metric([source], 1)
        except Exception:  # a scrape must answer whatever is down
            log.warning("metrics: could not read the %s", source, exc_info=True)
            up.add_metric([source], 0)
    families.append(up)
    targets = GaugeMetricFamily(
        "concord_slo_target", "The configured consistency SLO targets (settings.SLO).", labels=["slo"]
    )
    for label, key in SLO_TARGETS.items():
        targets.add_metric([label], float(settings.SLO[key]))
    families.append(targets)
    families.append(
        GaugeMetricFamily(
            "concord_state_collect_duration_seconds",
            "Time spent computing the database and broker gauges.",
            value=time.monotonic() - started,
        )
    )
    return families


def _database() -> list:
    from core.money import CURRENCY_EXPONENTS
    from reconciliation.selectors import incident_kinds, incidents_live_totals, reconciliation_last_success
    from sagas.selectors import saga_queue_summary

    now = timezone.now()
    families = []

    max_age = int(settings.SLO["MONEY_AT_RISK_MAX_AGE_SECONDS"])
    incidents = GaugeMetricFamily(
        "concord_incidents_open", "Live (open or acknowledged) incidents.", labels=["type", "severity"]
    )
    at_risk = GaugeMetricFamily(
        "concord_money_at_risk", "Money at risk in live incidents, in major units.", labels=["currency"]
    )
    overdue = GaugeMetricFamily(
        "concord_money_at_risk_overdue",
        "Money at risk in live incidents detected more than SLO MONEY_AT_RISK_MAX_AGE_SECONDS ago "
        "(SLO: none).",
        labels=["currency"],
    )
    # Zeros for every kind and currency that could appear: a graph shows 0, not "no data".
    by_kind: dict[tuple[str, str], int] = dict.fromkeys(incident_kinds(), 0)
    by_currency: dict[str, list[float]] = {currency: [0.0, 0.0] for currency in CURRENCY_EXPONENTS}
    for row in incidents_live_totals(overdue_before=now - timedelta(seconds=max_age)):
        key = (row["type"], row["severity"])
        by_kind[key] = by_kind.get(key, 0) + row["count"]
        if row["currency"]:
            sums = by_currency.setdefault(row["currency"], [0.0, 0.0])
            sums[0] += float(row["amount"])
            sums[1] += float(row["overdue_amount"])
    for (incident_type, severity), count in sorted(by_kind.items()):
        incidents.add_metric([incident_type, severity], count)
    for currency, (amount, overdue_amount) in sorted(by_currency.items()):
        at_risk.add_metric([currency], amount)
        overdue.add_metric([currency], overdue_amount)
    families += [incidents, at_risk, overdue]

    last = reconciliation_last_success()
    if last is not None:
        families.append(
            GaugeMetricFamily(
                "concord_reconciliation_last_success_timestamp_seconds",
                "When the last completed reconciliation pass finished (Unix time).",
                value=last.timestamp(),
            )
        )
    families.append(
        GaugeMetricFamily(
            "concord_reconciliation_lag_seconds",
            "Age of what reconciliation knows: seconds since the last completed pass finished "
            "(+Inf before the first one).",
            value=max(0.0, (now - last).total_seconds()) if last is not None else float("inf"),
        )
    )

    active = GaugeMetricFamily("concord_saga_runs_active", "Active saga runs.", labels=["saga", "status"])
    due = GaugeMetricFamily(
        "concord_saga_runs_due",
        "Active saga runs due to run now: the durable queue (Celery only carries pokes).",
        labels=["saga"],
    )
    oldest = GaugeMetricFamily(
        "concord_saga_oldest_due_seconds",
        "How long the oldest due saga run has been waiting (0 when none is due).",
        labels=["saga"],
    )
    expired = GaugeMetricFamily(
        "concord_saga_leases_expired",
        "Active runs whose lease expired (the worker holding them died; the sweeper re-enqueues them).",
        labels=["saga"],
    )
    stuck = GaugeMetricFamily(
        "concord_sagas_stuck",
        "Saga runs a person must look at, by reason: failed, compensation_failed, overdue (active past its SLA).",
        labels=["saga", "reason"],
    )
    for row in saga_queue_summary(now=now):
        saga = row["saga_type"]
        active.add_metric([saga, "running"], row["running"])
        active.add_metric([saga, "compensating"], row["compensating"])
        due.add_metric([saga], row["due"])
        waited = (now - row["oldest_due_at"]).total_seconds() if row["oldest_due_at"] else 0.0
        oldest.add_metric([saga], max(0.0, waited))
        expired.add_metric([saga], row["lease_expired"])
        for reason in ("failed", "compensation_failed", "overdue"):
            stuck.add_metric([saga, reason], row[reason])
    families += [active, due, oldest, expired, stuck]
    families += _eventual_side(now)
    return families


def _eventual_side(now) -> list:
    """The outbox consumers' lag, webhook deliveries and customer messages (docs/events.md)."""
    from notifications.selectors import notification_status_counts
    from outbox.selectors import consumer_lag
    from webhooks.selectors import webhook_delivery_summary

    pending = GaugeMetricFamily(
        "concord_outbox_events_pending",
        "Events a consumer has not applied yet (sequenced after its position, or committed and not sequenced).",
        labels=["consumer"],
    )
    oldest = GaugeMetricFamily(
        "concord_outbox_oldest_pending_seconds",
        "Age of the oldest event a consumer has not applied (0 when caught up).",
        labels=["consumer"],
    )
    delivered = GaugeMetricFamily(
        "concord_outbox_last_delivered_timestamp_seconds",
        "When the consumer last applied an event (Unix time; 0 before the first).",
        labels=["consumer"],
    )
    failing = GaugeMetricFamily(
        "concord_outbox_consumer_failed_attempts",
        "Attempts in a row the consumer's handler raised at its current event (0 when healthy).",
        labels=["consumer"],
    )
    for lag in consumer_lag():
        pending.add_metric([lag.name], lag.pending)
        oldest.add_metric([lag.name], lag.oldest_pending_age)
        delivered.add_metric([lag.name], lag.last_delivered_at.timestamp() if lag.last_delivered_at else 0.0)
        failing.add_metric([lag.name], lag.attempts)
    summary = webhook_delivery_summary()
    deliveries = GaugeMetricFamily(
        "concord_webhook_deliveries",
        "Webhook deliveries to shops waiting (pending) or given up after every retry (failed).",
        labels=["status"],
    )
    deliveries.add_metric(["pending"], summary["pending"])
    deliveries.add_metric(["failed"], summary["failed"])
    waiting = summary["oldest_pending_at"]
    families = [
        pending,
        oldest,
        delivered,
        failing,
        deliveries,
        GaugeMetricFamily(
            "concord_webhook_oldest_pending_seconds",
            "Age of the oldest webhook delivery not delivered yet (0 when none).",
            value=max(0.0, (now - waiting).total_seconds()) if waiting else 0.0,
        ),
        GaugeMetricFamily(
            "concord_webhook_endpoints_disabled",
            "Shop endpoints disabled after persistent failure (support replays to enable them).",
            value=summary["endpoints_disabled"],
        ),
    ]
    messages = GaugeMetricFamily(
        "concord_notifications", "Messages to customers by status.", labels=["status"]
    )
    for status, count in notification_status_counts().items():
        messages.add_metric([status], count)
    families.append(messages)
    return families


def _broker() -> list:
    """Depth and oldest-message age of the Celery queues on Redis. Messages are
    LPUSHed and consumed from the right, so the oldest is at index -1; its age comes
    from the publish time every Concord message carries (core/logs.py)."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return []
    client = _redis(url)
    depth = GaugeMetricFamily(
        "concord_broker_queue_depth", "Messages waiting in a Celery queue on the broker.", labels=["queue"]
    )
    age = GaugeMetricFamily(
        "concord_broker_oldest_message_age_seconds",
        "Age of the oldest message waiting in a Celery queue (0 when empty).",
        labels=["queue"],
    )
    now = time.time()
    for queue in _queues():
        pipe = client.pipeline(transaction=False)
        pipe.llen(queue)
        pipe.lindex(queue, -1)
        length, oldest = pipe.execute()
        depth.add_metric([queue], length)
        age.add_metric([queue], _message_age(oldest, now))
    return [depth, age, *_heartbeats(now)]


def _heartbeats(now: float) -> list[GaugeMetricFamily]:
    """Seconds since a worker last took a task and since beat last sent one (the
    back office's Systems box reads the same, core/heartbeats.py); no sample (and no
    family) for one that never did."""
    from core.heartbeats import BEAT, EVENTS, WORKER, heartbeat_age

    family = GaugeMetricFamily(
        "concord_heartbeat_age_seconds",
        "Seconds since a worker last started a task from the saga queue (process=worker) or the "
        "events and bulk queues (process=events), or beat last sent one (process=beat).",
        labels=["process"],
    )
    for process in (WORKER, EVENTS, BEAT):
        seen = heartbeat_age(process, now=now)
        if seen is not None:
            family.add_metric([process], seen)
    return [family] if family.samples else []


def _queues() -> list[str]:
    from celery import current_app as app

    names = {app.conf.task_default_queue or "celery"}
    names.update(q.name for q in (app.conf.task_queues or []))
    return sorted(names)


def _message_age(raw: bytes | None, now: float) -> float:
    from core.logs import SENT_AT_HEADER

    if not raw:
        return 0.0
    try:
        sent_at = float(json.loads(raw)["headers"][SENT_AT_HEADER])
    except (ValueError, KeyError, TypeError):
        return 0.0  # a message from elsewhere: no publish time to read
    return max(0.0, now - sent_at)


def _redis(url: str):
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _redis_clients[url] = client
    return client
