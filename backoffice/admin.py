from django.contrib import admin

from core.fsm_admin import ReadOnlyAdmin

from .models import ApprovalRequest, BulkItem, BulkJob, SlaEscalation, StaffAction


@admin.register(StaffAction)
class StaffActionAdmin(ReadOnlyAdmin):
    """Every staff action taken in the back office: who, what, why, with what outcome."""

    list_display = ("id", "user", "action", "order_id", "target", "created_at")
    list_filter = ("action",)
    search_fields = ("reason", "outcome", "target", "key")
    list_select_related = ("user",)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    """Two-person approvals; decided only on the back office's approval page (audited)."""

    list_display = (
        "id",
        "kind",
        "status",
        "amount",
        "currency",
        "order_id",
        "requested_by",
        "decided_by",
        "requested_at",
    )
    list_filter = ("kind", "status")
    search_fields = ("reason",)
    list_select_related = ("requested_by", "decided_by")


@admin.register(SlaEscalation)
class SlaEscalationAdmin(ReadOnlyAdmin):
    """Items e-mailed past their service level (backoffice.sla): at most one per item."""

    list_display = (
        "id",
        "state",
        "subject_id",
        "order_id",
        "group",
        "status",
        "age_seconds",
        "created_at",
        "sent_at",
    )
    list_filter = ("state", "group", "status")
    search_fields = ("recipients", "error")


@admin.register(BulkJob)
class BulkJobAdmin(ReadOnlyAdmin):
    """Bulk actions by filter; started, followed and stopped on the back office's pages."""

    list_display = ("id", "label", "state", "total", "created_by", "created_at", "finished_at")
    list_filter = ("state", "page", "op")
    search_fields = ("reason", "key")
    list_select_related = ("created_by",)


@admin.register(BulkItem)
class BulkItemAdmin(ReadOnlyAdmin):
    """One target of a bulk job, its state and outcome (its audit row: the StaffAction of its key)."""

    list_display = ("id", "job", "subject_id", "order_id", "state", "updated_at")
    list_filter = ("state",)
    search_fields = ("action_key", "outcome")
