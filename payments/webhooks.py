"""POST /api/v1/webhooks/psp/: the provider's signed events (DESIGN §5).

No API token: the provider proves itself with `PSP-Signature` (HMAC-SHA256 of
"<t>.<raw body>" with PSP_WEBHOOK_SECRET, compared in constant time, at most
five minutes old). The signature is checked on the raw bytes before the body is
parsed, so nothing unsigned is ever interpreted. Answers:

- 200: the event is recorded (first delivery: looked at; later ones: duplicate).
  An event is a hint, never the fact: the payment or refund it names is settled
  from the provider's own records, asked through the provider client
  (payments/services/webhooks.py); a forged `charge.succeeded` captures nothing.
  Unknown event types are acknowledged too, so the provider stops retrying.
- 503 `provider_unavailable`: the provider's records could not be read; nothing is
  recorded and the provider delivers the event again later.
- 400 `invalid_signature` / `stale_signature`: not from the provider, or replayed
  late. The provider retries non-2xx answers, so a clock skew heals itself.
- 400 `malformed_request` / `invalid_event`: signed but unreadable.

Each delivery is counted by outcome in /metrics and logged with `webhook_event_id`
and the `order_id` its charge refers to (core/logs.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import logs, metrics
from core.api_exceptions import RequestTooLarge
from core.api_parsers import LimitedJSONParser, max_body_bytes
from core.api_schema import declares_errors
from core.errors import ConcordError

from .choices import WebhookOutcome
from .services import webhook_event_receive
from .webhook_signing import SIGNATURE_HEADER, InvalidSignature, verify_signature

log = logging.getLogger(__name__)

STALE_REASON = "timestamp outside the tolerance"


class ProviderEventObjectInput(serializers.Serializer):
    object = serializers.JSONField(help_text="The charge or refund the event is about.")


class ProviderEventInput(serializers.Serializer):
    id = serializers.CharField(
        max_length=255, help_text="Event id (`evt_...`); deliveries are deduplicated by it."
    )
    type = serializers.CharField(
        max_length=64, help_text="charge.succeeded, charge.failed, refund.succeeded, ..."
    )
    created = serializers.IntegerField(required=False, help_text="Unix seconds.")
    data = ProviderEventObjectInput()


class WebhookAckOutput(serializers.Serializer):
    received = serializers.BooleanField()
    event_id = serializers.CharField()
    duplicate = serializers.BooleanField(help_text="True when this event id was processed before.")
    outcome = serializers.ChoiceField(
        choices=WebhookOutcome.values,
        help_text="What the event did: applied to a payment (from the provider's own records), not confirmed "
        "by those records (nothing changed), no payment for it, an event type that "
        "brings no news (ignored), signed but unusable (rejected), or an earlier delivery did it (duplicate).",
    )


SIGNATURE_PARAMETER = OpenApiParameter(
    name=SIGNATURE_HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=True,
    description='`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` (several v1 allowed during '
    "secret rotation). At most 5 minutes old.",
)

WEBHOOK_ERROR_DESCRIPTIONS = {
    503: "The provider's own records could not be read (`provider_unavailable`); deliver the event again.",
    400: "Signature missing or wrong (`invalid_signature`), timestamp older or newer than 5 minutes "
    "(`stale_signature`), body not JSON (`malformed_request`) or not an event (`invalid_event`).",
}


def _event_fields(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ConcordError("The body is not JSON.", code="malformed_request") from None
    shape = ProviderEventInput(data=event)
    if not shape.is_valid():
        raise ConcordError("The body is not a provider event.", code="invalid_event", details=shape.errors)
    return event


def _bind_event(event: dict[str, Any]) -> None:
    """The event's id, and the order its charge (or refund's charge) refers to."""
    logs.bind(webhook_event_id=event["id"])
    subject = event.get("data", {}).get("object")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if isinstance(reference, str) and reference.isascii() and reference.isdigit() and len(reference) <= 18:
        logs.bind(order_id=int(reference))


class ProviderWebhookApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="webhooks_psp",
        summary="Payment provider events",
        description="Called by the payment provider, not by API clients. Signed with `PSP-Signature`; "
        "deduplicated by event id; unknown event types are acknowledged (200).",
        parameters=[SIGNATURE_PARAMETER],
        request=ProviderEventInput,
        responses={200: WebhookAckOutput},
        auth=[],
    )
    @declares_errors(400, 503, descriptions=WEBHOOK_ERROR_DESCRIPTIONS)
    def post(self, request: Request) -> Response:
        try:
            return self._receive(request)
        except ConcordError as exc:
            metrics.webhook_event(outcome=exc.code)
            raise

    def _receive(self, request: Request) -> Response:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max_body_bytes():
            raise RequestTooLarge(f"The request body is larger than {max_body_bytes()} bytes.")
        body = request.body
        try:
            verify_signature(body, request.headers.get(SIGNATURE_HEADER, ""), settings.PSP_WEBHOOK_SECRET)
        except InvalidSignature as exc:
            code = "stale_signature" if exc.reason == STALE_REASON else "invalid_signature"
            raise ConcordError(
                "The webhook signature is not valid.", code=code, details={"reason": exc.reason}
            ) from None
        event = _event_fields(body)
        _bind_event(event)
        receipt = webhook_event_receive(event_id=event["id"], event_type=event["type"], payload=event)
        outcome = "duplicate" if receipt.duplicate else receipt.outcome
        metrics.webhook_event(outcome=outcome)
        log.info("provider webhook %s: %s", event["type"], outcome)
        return Response(
            {
                "received": True,
                "event_id": receipt.event_id,
                "duplicate": receipt.duplicate,
                "outcome": receipt.outcome,
            }
        )
