"""What webhooks hands to the API and the back office."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .models import WebhookDelivery, WebhookEndpoint


@dataclass(frozen=True)
class EndpointDTO:
    id: int
    client_id: int
    url: str
    event_types: tuple[str, ...]
    description: str
    status: str
    disabled_reason: str
    created_at: datetime

    @classmethod
    def from_model(cls, e: WebhookEndpoint) -> EndpointDTO:
        return cls(
            id=e.pk,
            client_id=e.client_id,
            url=e.url,
            event_types=tuple(e.event_types),
            description=e.description,
            status=e.status,
            disabled_reason=e.disabled_reason,
            created_at=e.created_at,
        )


@dataclass(frozen=True)
class DeliveryDTO:
    id: int
    endpoint_id: int
    endpoint_url: str
    endpoint_status: str
    endpoint_disabled_reason: str
    event_id: str
    event_type: str
    order_id: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, d: WebhookDelivery) -> DeliveryDTO:
        return cls(
            id=d.pk,
            endpoint_id=d.endpoint_id,
            endpoint_url=d.endpoint.url,
            endpoint_status=d.endpoint.status,
            endpoint_disabled_reason=d.endpoint.disabled_reason,
            event_id=str(d.event.event_id),
            event_type=d.event.type,
            order_id=d.order_id,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_attempt_at=d.last_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            delivered_at=d.delivered_at,
            created_at=d.created_at,
        )
