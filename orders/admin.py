"""Orders in the Django admin: read-only records; cancellations run as audited actions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django_fsm_log.admin import StateLogInline

from core.fsm_admin import FSMTransitionActionsMixin, TransitionAction
from core.staff_flow import ORDER_CANCEL, staff_flow_run

from . import services
from .choices import FailureReason
from .models import Order, OrderLine


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    fields = ("sku", "quantity", "unit_price", "line_total")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _cancel(obj: Order, by: Any, reason: str) -> Any:
    """A pending order: the API's recipe (stop the checkout; it compensates)."""
    return services.order_request_cancel(
        order_id=obj.pk, failure_reason=FailureReason.CANCELLED_BY_STAFF, by=by, reason=reason
    )


def _cancel_confirmed(obj: Order, by: Any, reason: str) -> str:
    """A confirmed order: the back office's cancel operation (core.staff_flow), with its
    permission and its approval rule — above the threshold it waits for finance; else
    the cancellation saga refunds, restocks and cancels (issue 13, item 5)."""
    return staff_flow_run(ORDER_CANCEL, order_id=obj.pk, by=by, reason=reason)


@admin.register(Order)
class OrderAdmin(FSMTransitionActionsMixin, admin.ModelAdmin):
    fsm_field = "status"
    list_display = [
        "id",
        "client_id",
        "customer_email",
        "status",
        "failure_reason",
        "total",
        "currency",
        "created_at",
    ]
    list_filter = ["status", "failure_reason", "currency"]
    search_fields = ["=id", "customer_email"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, StateLogInline]
    # Never the bare transition: a pending order's checkout is stopped through the API's
    # recipe (order_request_cancel: stock released, a charge refunded); a confirmed one
    # goes through the back office's cancel operation (same permission, approval above
    # the threshold), whose cancellation saga refunds and restocks.
    # Confirming stays with the checkout saga and the back office's previewed action.
    transition_actions = (
        TransitionAction(transition="cancel", label="Cancel pending order", run=_cancel),
        TransitionAction(
            transition="begin_cancellation",
            label="Cancel confirmed order (refund and restock)",
            run=_cancel_confirmed,
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        return [*(f.name for f in Order._meta.fields), "available_transitions"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OrderLine)
class OrderLineAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "sku", "quantity", "unit_price", "line_total"]
    search_fields = ["=order__id", "sku"]
    list_select_related = ["order"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in OrderLine._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
