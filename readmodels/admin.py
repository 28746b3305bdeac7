"""The read models in the admin: read only (only their consumers and the rebuild write them)."""

from django.contrib import admin

from core.fsm_admin import ReadOnlyAdmin

from .models import DriftCheckState, FinanceDay, FinanceFact, OrderSearch


@admin.register(FinanceDay)
class FinanceDayAdmin(ReadOnlyAdmin):
    list_display = ("day", "currency", "orders", "revenue", "refunds", "refunded", "incidents", "dismissed")
    list_filter = ("currency",)
    readonly_fields = [f.name for f in FinanceDay._meta.fields]


@admin.register(FinanceFact)
class FinanceFactAdmin(ReadOnlyAdmin):
    list_display = ("key", "kind", "day", "currency", "amount", "incident_type", "at")
    list_filter = ("kind",)
    search_fields = ("=key",)
    readonly_fields = [f.name for f in FinanceFact._meta.fields]


@admin.register(OrderSearch)
class OrderSearchAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "status", "customer_email", "payment_status", "charge_id", "idempotency_key")
    list_filter = ("status",)
    search_fields = ("=order_id", "customer_email", "=charge_id", "=idempotency_key")
    readonly_fields = [f.name for f in OrderSearch._meta.fields]


@admin.register(DriftCheckState)
class DriftCheckStateAdmin(ReadOnlyAdmin):
    list_display = ("model", "cursor", "checked_at")
    readonly_fields = [f.name for f in DriftCheckState._meta.fields]
