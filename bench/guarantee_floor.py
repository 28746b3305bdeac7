"""The guarantee floor (bench only): the least an accepted order must do to keep
DESIGN §6's guarantee, written by hand, so bench/api_throughput.py and
bench/api_cpu.py can say how much of the gap between POST /api/v1/orders/ and the
one-INSERT floor is the guarantee itself and how much is Concord's code.

Same DRF view setup as bench/floor/ (the API's token auth and Redis throttle, JSON
parsing), then ONE transaction of two statements against Concord's real tables (the
bench database is migrated, so the schema cannot drift):

1. the idempotency claim: INSERT … ON CONFLICT DO NOTHING of (client, key,
   fingerprint) — a replayed key returns the stored response, a reused one 422;
2. one statement of data-modifying CTEs: catalog prices (active, same currency, every
   sku known or nothing is written), the order, its lines, its creation audit row
   (django-fsm-log's StateLog), the order.placed outbox event (the order document
   and the idempotency key), the pending payment, the checkout saga run (first step,
   due now, the payment id in its context) and the stored idempotent response (the
   claimed row updated with the rendered body the client gets).

After the commit, the pokes the real path makes (outbox relay, and the saga start:
sagas.tasks.poke_fresh — coalesced per burst, as saga_start does), by the same
functions: one batch, their two flags in one Redis round trip (core.pokes). What it leaves
out is everything that is not the guarantee: DRF serializers, services and DTOs,
the ORM, error envelopes beyond a plain 400/422, logs and metrics.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.views import APIView

from orders.models import Order
from outbox.tasks import poke_on_commit as outbox_poke_on_commit
from sagas.tasks import poke_fresh_on_commit

_CLAIM = (
    "INSERT INTO idempotency_idempotencyrecord (client_id, key, fingerprint, request_method, "
    "request_path, state, response_headers, created_at, expires_at) "
    "VALUES (%s, %s, %s, 'POST', %s, 'in_flight', '{}'::jsonb, %s, %s) "
    "ON CONFLICT (client_id, key) DO NOTHING RETURNING id"
)

_ACCEPT = """
WITH input AS (
    SELECT l.sku, l.quantity, l.n FROM unnest(%(skus)s::varchar[], %(quantities)s::integer[])
        WITH ORDINALITY AS l(sku, quantity, n)),
priced AS (
    SELECT i.sku, i.quantity, i.n, p.price AS unit_price, p.price * i.quantity AS line_total
    FROM input i JOIN inventory_product p ON p.sku = i.sku AND p.active AND p.currency = %(currency)s),
new_order AS (
    INSERT INTO orders_order (client_id, customer_email, currency, total, payment_method, status,
                              failure_reason, created_at, updated_at)
    SELECT %(client)s, %(email)s, %(currency)s, sum(line_total), %(method)s, 'pending', NULL, %(now)s, %(now)s
    FROM priced HAVING count(*) = %(count)s
    RETURNING id, total),
new_lines AS (
    INSERT INTO orders_orderline (order_id, sku, quantity, unit_price, line_total)
    SELECT o.id, p.sku, p.quantity, p.unit_price, p.line_total FROM new_order o, priced p ORDER BY p.n),
new_audit AS (
    INSERT INTO django_fsm_log_statelog (timestamp, by_id, source_state, state, transition,
                                         content_type_id, object_id, description)
    SELECT %(now)s, NULL, NULL, 'pending', 'create', %(content_type)s, o.id, %(audit)s FROM new_order o),
new_payment AS (
    INSERT INTO payments_payment (order_id, amount, currency, payment_method, status, provider_charge_id,
                                  failure_code, last_error, refunded_amount, created_at, updated_at,
                                  provider_key)
    SELECT o.id, o.total, %(currency)s, %(method)s, 'pending', NULL, '', '', 0, %(now)s, %(now)s,
           %(provider_key)s
    FROM new_order o
    RETURNING id),
new_run AS (
    INSERT INTO sagas_sagarun (saga_type, subject_id, status, step_index, step, direction, attempts,
                               next_attempt_at, lease_owner, last_error, failure_code, context,
                               abort_requested, sla_at, created_at, updated_at)
    SELECT 'checkout', o.id::text, 'running', 0, 'reserve_stock', 'forward', 0, %(now)s, '', '', '',
           jsonb_build_object('payment_id', p.id), false, %(sla)s, %(now)s, %(now)s
    FROM new_order o, new_payment p),
document AS (
    SELECT jsonb_build_object(
        'id', o.id, 'status', 'pending', 'failure_reason', NULL, 'customer_email', %(email)s,
        'currency', %(currency)s, 'total', o.total::text, 'created_at', %(now_text)s,
        'updated_at', %(now_text)s,
        'lines', (SELECT jsonb_agg(jsonb_build_object('sku', sku, 'quantity', quantity,
                                   'unit_price', unit_price::text, 'line_total', line_total::text) ORDER BY n)
                  FROM priced)) AS doc, p.id AS payment_id
    FROM new_order o, new_payment p),
new_event AS (
    INSERT INTO outbox_event (id, type, aggregatetype, aggregateid, payload, schema_version, created_at)
    SELECT %(event_id)s, 'order.placed', 'order', (d.doc->>'id'),
           jsonb_build_object('object', jsonb_build_object('object', 'order', 'client_id', %(client)s) || d.doc,
                              'meta', jsonb_build_object('idempotency_key', %(key)s)),
           2, %(now)s
    FROM document d),
response AS (
    SELECT convert_to((d.doc || jsonb_build_object('payment', jsonb_build_object(
        'id', d.payment_id, 'status', 'pending', 'amount', d.doc->'total')))::text, 'UTF8') AS body
    FROM document d),
stored AS (
    UPDATE idempotency_idempotencyrecord r SET state = 'completed', response_status = 201,
           response_body = response.body, response_headers = '{"Content-Type": "application/json"}'::jsonb
    FROM response WHERE r.id = %(record)s AND r.state = 'in_flight'
    RETURNING r.response_body)
SELECT response_body FROM stored
"""


def _bad(message: str, status: int = 400) -> HttpResponse:
    return HttpResponse(json.dumps({"error": message}), status=status, content_type="application/json")


class GuaranteeFloorApi(APIView):
    """Token auth and throttle from the API's defaults, like bench/floor/."""

    def post(self, request: Request) -> HttpResponse:
        key = request.headers.get("Idempotency-Key", "")
        data = request.data
        try:
            email, currency, method = data["customer_email"], data["currency"], data["payment_method"]
            skus = [str(line["sku"]) for line in data["lines"]]
            quantities = [int(line["quantity"]) for line in data["lines"]]
        except (KeyError, TypeError, ValueError):
            return _bad("invalid body")
        if not key or not skus or min(quantities) < 1:
            return _bad("invalid body")
        body = json.dumps(data, sort_keys=True, separators=(",", ":"))
        fingerprint = hashlib.sha256(f"POST\n{request.path}\n{body}".encode()).hexdigest()
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                _CLAIM, [request.user.pk, key, fingerprint, request.path, now, now + timedelta(days=1)]
            )
            claimed = cursor.fetchone()
            if claimed is None:
                cursor.execute(
                    "SELECT fingerprint, response_status, response_body FROM idempotency_idempotencyrecord "
                    "WHERE client_id = %s AND key = %s",
                    [request.user.pk, key],
                )
                stored_fingerprint, status, stored = cursor.fetchone()
                if stored_fingerprint != fingerprint:
                    return _bad("Idempotency-Key reused", 422)
                if status is None:
                    return _bad("in progress", 409)
                return HttpResponse(bytes(stored), status=status, content_type="application/json")
            cursor.execute(
                _ACCEPT,
                {
                    "skus": skus,
                    "quantities": quantities,
                    "currency": currency,
                    "client": request.user.pk,
                    "email": email,
                    "method": method,
                    "now": now,
                    "now_text": now.isoformat(),
                    "count": len(skus),
                    "content_type": ContentType.objects.get_for_model(Order).pk,
                    "audit": f"placed by API client {request.user.pk}",
                    "provider_key": str(uuid.uuid4()),
                    "sla": now + timedelta(minutes=30),
                    "event_id": uuid.uuid4(),
                    "key": key,
                    "record": claimed[0],
                },
            )
            row = cursor.fetchone()
            if row is None:  # an unknown sku or another currency: nothing was written
                transaction.set_rollback(True)
                return _bad("unknown sku")
            outbox_poke_on_commit()
            poke_fresh_on_commit()
        return HttpResponse(bytes(row[0]), status=201, content_type="application/json")
