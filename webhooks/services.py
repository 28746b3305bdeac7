"""Writes of webhooks: endpoints (for API clients) and the staff replay."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core.errors import ConcordError, Conflict, NotFound

from . import conf
from .consumer import PUBLIC_EVENT_TYPES
from .dto import DeliveryDTO, EndpointDTO
from .models import DeliveryStatus, EndpointStatus, WebhookDelivery, WebhookEndpoint
from .signing import new_secret
from .tasks import poke_sender
from .validation import validate_endpoint_url

MAX_DESCRIPTION = 255


def _clean_event_types(event_types: object) -> list[str]:
    if not isinstance(event_types, list | tuple) or not event_types:
        raise ConcordError(
            "event_types is a non-empty list.",
            code="validation_error",
            details={"event_types": ['A non-empty list of event types, or ["*"].']},
        )
    unknown = [t for t in event_types if t != "*" and t not in PUBLIC_EVENT_TYPES]
    if unknown or not all(isinstance(t, str) for t in event_types):
        raise ConcordError(
            f"Unknown event type(s): {', '.join(map(str, unknown))}.",
            code="validation_error",
            details={"event_types": [f"Known types: {', '.join(PUBLIC_EVENT_TYPES)}, or *."]},
        )
    return sorted(set(event_types))


def webhook_endpoint_create(
    *, client_id: int, url: str, event_types: list[str], description: str = ""
) -> tuple[EndpointDTO, str]:
    """Register an endpoint; returns it and its secret (shown to the client once)."""
    url = validate_endpoint_url(url)
    types = _clean_event_types(event_types)
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ConcordError(
            "description is at most 255 characters.",
            code="validation_error",
            details={"description": ["At most 255 characters."]},
        )
    live = WebhookEndpoint.objects.filter(client_id=client_id).exclude(status=EndpointStatus.DELETED)
    if live.count() >= conf.max_endpoints_per_client():
        raise Conflict(
            f"At most {conf.max_endpoints_per_client()} endpoints per client.", code="too_many_endpoints"
        )
    secret = new_secret()
    with transaction.atomic(savepoint=False):
        endpoint = WebhookEndpoint.objects.create(
            client_id=client_id, url=url, event_types=types, description=description, secret=secret
        )
    return EndpointDTO.from_model(endpoint), secret


@transaction.atomic
def webhook_endpoint_delete(*, client_id: int, endpoint_id: int) -> None:
    """Stop delivering to the endpoint (its pending deliveries are cancelled). Deleting
    it again is a no-op; another client's endpoint is not found."""
    endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id, client_id=client_id).first()
    if endpoint is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found.", details={"endpoint_id": endpoint_id})
    if endpoint.status == EndpointStatus.DELETED:
        return
    endpoint.status = EndpointStatus.DELETED
    endpoint.save(update_fields=["status", "updated_at"])
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.CANCELLED, next_attempt_at=None, leased_until=None
    )


def webhook_delivery_replay(*, delivery_id: int, by: Any, reason: str) -> DeliveryDTO:
    """Staff: send a failed delivery again now (attempts start afresh). A disabled
    endpoint is enabled again (the person says the shop is back), so its other
    pending deliveries follow in order. Call it in the staff action's transaction
    (the back office records who and why with it)."""
    if by is None or not getattr(by, "is_authenticated", False):
        raise ConcordError("A person must perform this action.", code="person_required", http_status=403)
    if not isinstance(reason, str) or not reason.strip():
        raise ConcordError("A reason is required.", code="reason_required")
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("endpoint", "event")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            raise NotFound(f"Delivery {delivery_id} not found.", code="delivery_not_found")
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        if endpoint.status == EndpointStatus.DELETED:
            raise Conflict("The shop deleted this endpoint.", code="endpoint_deleted")
        if delivery.status != DeliveryStatus.FAILED:
            raise Conflict(
                f"Delivery {delivery_id} is {delivery.status}; only a failed one can be replayed.",
                code="delivery_not_replayable",
            )
        now = timezone.now()
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = now
        delivery.leased_until = None
        delivery.last_error = f"replayed by {by.get_username()}: {reason.strip()}"[:2000]
        delivery.save()
        if endpoint.status == EndpointStatus.DISABLED:
            endpoint.status = EndpointStatus.ENABLED
            endpoint.disabled_at = None
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
            endpoint.save()
        delivery.endpoint = endpoint
        transaction.on_commit(poke_sender, robust=True)
        return DeliveryDTO.from_model(delivery)
