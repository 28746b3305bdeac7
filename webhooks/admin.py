"""Webhook rows in the admin: read only (the API, the consumer and the sender write them)."""

from django.contrib import admin

from core.fsm_admin import ReadOnlyAdmin

from .models import ClientEvent, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("id", "client_id", "url", "status", "failing_since", "created_at")
    list_filter = ("status",)
    exclude = ("secret",)
    readonly_fields = [f.name for f in WebhookEndpoint._meta.fields if f.name != "secret"]


@admin.register(ClientEvent)
class ClientEventAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "type", "client_id", "order_id", "created_at")
    list_filter = ("type",)
    search_fields = ("=event_id", "=order_id")
    readonly_fields = [f.name for f in ClientEvent._meta.fields]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "endpoint", "order_id", "status", "attempts", "next_attempt_at", "last_status_code")
    list_filter = ("status",)
    search_fields = ("=order_id",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
