"""Read-only admin views: incidents change only through the services (audited, reasoned)."""

from django.contrib import admin

from core.fsm_admin import ReadOnlyAdmin

from .models import (
    DetectorCheckpoint,
    Incident,
    IncidentNote,
    ProviderCharge,
    ProviderNetByHour,
    ProviderOrderCaptures,
    ProviderRefund,
    ProviderSettlement,
    ReconciliationRun,
    Remediation,
    SyncCursor,
)


class IncidentNoteInline(admin.TabularInline):
    model = IncidentNote
    extra = 0
    fields = ("created_at", "author", "text")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = ("id", "type", "severity", "state", "order_id", "charge_id", "amount_at_risk", "currency", "detected_at", "last_seen_at")  # fmt: skip
    list_filter = ("state", "type", "severity", "resolution_kind")
    search_fields = ("fingerprint", "charge_id", "=order_id")
    inlines = [IncidentNoteInline]


@admin.register(ProviderCharge)
class ProviderChargeAdmin(ReadOnlyAdmin):
    list_display = ("provider_id", "reference", "amount", "currency", "status", "amount_refunded", "created")
    list_filter = ("status", "currency")
    search_fields = ("provider_id", "=reference")


@admin.register(ProviderRefund)
class ProviderRefundAdmin(ReadOnlyAdmin):
    list_display = ("provider_id", "charge_provider_id", "amount", "currency", "status", "created")
    search_fields = ("provider_id", "charge_provider_id")


@admin.register(ProviderNetByHour)
class ProviderNetByHourAdmin(ReadOnlyAdmin):
    list_display = ("hour", "currency", "net")
    list_filter = ("currency",)


@admin.register(ProviderOrderCaptures)
class ProviderOrderCapturesAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "open_charges")
    search_fields = ("=order_id",)


@admin.register(ProviderSettlement)
class ProviderSettlementAdmin(ReadOnlyAdmin):
    list_display = (
        "date",
        "currency",
        "charges_count",
        "charges",
        "refunds_count",
        "refunds",
        "net",
        "imported_at",
    )


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "started_at",
        "finished_at",
        "status",
        "rows_scanned",
        "found",
        "opened",
        "auto_resolved",
    )
    list_filter = ("status",)


@admin.register(IncidentNote)
class IncidentNoteAdmin(ReadOnlyAdmin):
    list_display = ("id", "incident", "author", "created_at")
    search_fields = ("text",)
    list_select_related = ("incident", "author")


@admin.register(Remediation)
class RemediationAdmin(ReadOnlyAdmin):
    """What each remediation did, for whom and why; written only by the remediation services."""

    list_display = (
        "id",
        "incident",
        "action",
        "state",
        "automatic",
        "by",
        "currency",
        "attempts",
        "created_at",
    )
    list_filter = ("action", "state", "automatic")
    search_fields = ("key", "reason")
    list_select_related = ("incident", "by")


@admin.register(SyncCursor)
class SyncCursorAdmin(ReadOnlyAdmin):
    list_display = ("kind", "last_created", "last_id", "updated_at")


@admin.register(DetectorCheckpoint)
class DetectorCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("detector", "checked_at", "full_at")
