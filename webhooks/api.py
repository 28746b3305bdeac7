"""The shop-facing endpoints (DESIGN §5): webhook endpoints and the events list.

Everything is scoped to the calling API client: another client's endpoint answers
like a missing one (404), and the events list filters by the client first.
POST is @idempotent like every other POST (same key, same body: the same answer,
the secret included; Stripe does the same).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from core.api_cursor import decode_int_cursor, encode_cursor
from core.api_schema import declares_errors
from core.api_serializers import StrictSerializer
from idempotency.api import idempotent

from . import services
from .consumer import PUBLIC_EVENT_TYPES
from .dto import EndpointDTO
from .selectors import client_events_list, endpoint_get_for_client, endpoints_for_client

_CURSOR_PREFIX = "evt-before:"

ENDPOINT_ID_PARAMETER = OpenApiParameter(
    name="endpoint_id",
    type={"type": "integer", "minimum": 1, "maximum": 10**18 - 1},
    location=OpenApiParameter.PATH,
    description="The endpoint's id.",
)
EVENT_TYPE_CHOICES = [*PUBLIC_EVENT_TYPES, "*"]


class EndpointInput(StrictSerializer):
    url = serializers.CharField(max_length=2048, help_text="http(s) URL that receives the events.")
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES),
        allow_empty=False,
        max_length=len(EVENT_TYPE_CHOICES),
        help_text='Event types to receive, or ["*"] for every type.',
    )
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class EndpointOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["enabled", "disabled"],
        help_text="disabled: every attempt of a delivery failed for more than 24 h (see disabled_reason).",
    )
    disabled_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class EndpointCreatedOutput(EndpointOutput):
    secret = serializers.CharField(
        help_text="whsec_…: verify each delivery's webhook-signature with it (Standard Webhooks). "
        "Shown only in this response."
    )


class EndpointListOutput(serializers.Serializer):
    results = EndpointOutput(many=True)


class EventDataOutput(serializers.Serializer):
    object = serializers.DictField(help_text="The order or payment as it was when the event happened.")


class EventOutput(serializers.Serializer):
    id = serializers.CharField(help_text="Unique; also the webhook-id of its deliveries.")
    type = serializers.ChoiceField(choices=list(PUBLIC_EVENT_TYPES))
    created = serializers.IntegerField(help_text="Unix seconds.")
    created_at = serializers.DateTimeField()
    data = EventDataOutput()


class EventPageOutput(serializers.Serializer):
    results = EventOutput(many=True)
    next = serializers.URLField(allow_null=True, help_text="URL of the next (older) page; null on the last.")


class EventListQuery(serializers.Serializer):
    type = serializers.ChoiceField(choices=list(PUBLIC_EVENT_TYPES), required=False)
    cursor = serializers.CharField(required=False, max_length=512)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)


def endpoint_json(endpoint: EndpointDTO) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "description": endpoint.description,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": serializers.DateTimeField().to_representation(endpoint.created_at),
    }


class EndpointListCreateApi(APIView):
    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="List your webhook endpoints",
        responses={200: EndpointListOutput},
    )
    def get(self, request: Request) -> Response:
        endpoints = endpoints_for_client(client_id=request.user.pk)
        return Response({"results": [endpoint_json(e) for e in endpoints]})

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Register a webhook endpoint",
        description="Events of the given types are POSTed to the URL, signed per the Standard Webhooks "
        "specification with the returned secret (shown once), retried with backoff for at least 24 h, "
        "in commit order per order. Only http(s) URLs; in production, URLs that resolve to loopback, "
        "private or link-local addresses are refused (`invalid_url`).",
        request=EndpointInput,
        responses={201: EndpointCreatedOutput},
        examples=[
            OpenApiExample(
                "Orders and refunds",
                request_only=True,
                value={
                    "url": "https://shop.example.com/hooks/concord",
                    "event_types": ["order.confirmed", "order.cancelled", "payment.refunded"],
                },
            )
        ],
    )
    @declares_errors(
        409, descriptions={409: "Too many endpoints (`too_many_endpoints`), or the key is in use."}
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_endpoint_create(
            client_id=request.user.pk,
            url=data.validated_data["url"],
            event_types=data.validated_data["event_types"],
            description=data.validated_data["description"],
        )
        return Response({**endpoint_json(endpoint), "secret": secret}, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        summary="Get one of your webhook endpoints",
        parameters=[ENDPOINT_ID_PARAMETER],
        responses={200: EndpointOutput},
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        return Response(
            endpoint_json(endpoint_get_for_client(client_id=request.user.pk, endpoint_id=endpoint_id))
        )

    @extend_schema(
        operation_id="webhook_endpoints_delete",
        summary="Delete one of your webhook endpoints",
        description="Nothing more is delivered to it; deliveries still pending are cancelled. "
        "Deleting it again answers 204 too.",
        parameters=[ENDPOINT_ID_PARAMETER],
        responses={204: None},
    )
    def delete(self, request: Request, endpoint_id: int) -> Response:
        services.webhook_endpoint_delete(client_id=request.user.pk, endpoint_id=endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventListApi(APIView):
    @extend_schema(
        operation_id="events_list",
        summary="List your events",
        description="The events about your orders and their payments, newest first (commit order), "
        "kept WEBHOOK_EVENT_RETENTION_DAYS (30) days. Cursor-paginated: follow `next`. The same "
        "JSON is what your webhook endpoints receive.",
        parameters=[EventListQuery],
        responses={200: EventPageOutput},
    )
    def get(self, request: Request) -> Response:
        query = EventListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        limit = params["limit"]
        before = decode_int_cursor(_CURSOR_PREFIX, params["cursor"]) if params.get("cursor") else None
        rows = client_events_list(
            client_id=request.user.pk,
            before_sequence=before,
            types=[params["type"]] if params.get("type") else None,
            limit=limit + 1,
        )
        page, more = rows[:limit], len(rows) > limit
        next_url = None
        if more:
            next_url = replace_query_param(
                request.build_absolute_uri(), "cursor", encode_cursor(_CURSOR_PREFIX, page[-1]["_sequence"])
            )
        return Response(
            {"results": [{k: v for k, v in e.items() if k != "_sequence"} for e in page], "next": next_url}
        )
