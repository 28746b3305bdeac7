"""Admin for the payments app.

States are never edited: every field is read-only and a state changes only through
an admin action that calls the service (row lock, audit row with the staff member
and the reason, ledger posting). An action applies to a selected row only when the
transition is legal from its state and the user holds its permission
(django_fsm.can_proceed / has_transition_perm); other rows are skipped and named.
The ledger is append-only: visible, never added, changed or deleted here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django_fsm import can_proceed, has_transition_perm
from django_fsm_log.admin import StateLogInline

from core.errors import ConcordError
from core.fsm_admin import ReadOnlyAdmin, ReadOnlyInline

from . import services
from .models import (
    LedgerAccount,
    LedgerBalanceByHour,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    ProviderAttempt,
    ProviderWebhookEvent,
    Refund,
)

MANUAL_FAILURE_CODE = "manual"


class ReasonActionForm(helpers.ActionForm):
    """Every manual action carries a person (request.user) and a reason (DESIGN §6.8)."""

    reason = forms.CharField(
        required=True, max_length=1000, help_text="Why — written to the audit log with your name."
    )
    provider_reference = forms.CharField(
        required=False,
        max_length=255,
        label="Provider id / failure code",
        help_text="Charge or refund id from the provider's dashboard; or a failure code.",
    )


def _person(request: HttpRequest) -> User:
    """The staff member acting (the admin lets only logged-in staff this far)."""
    if isinstance(request.user, AnonymousUser):
        raise PermissionDenied
    return request.user


def _transition_names(obj: Model) -> list[str]:
    return [t.name for t in obj.get_available_status_transitions()]  # type: ignore[attr-defined]


class TransitionAdmin(admin.ModelAdmin):
    """Base for models with a protected FSM status changed only by admin actions."""

    action_form = ReasonActionForm
    # name of the permission every transition action needs (see the model's Meta)
    transition_permission: str = ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created by services only

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # money records are never deleted

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields] + ["available_transitions"]

    @admin.display(description="Actions possible now")
    def available_transitions(self, obj: Model) -> str:
        return ", ".join(_transition_names(obj)) or "none (final state)"

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if self.transition_permission and not request.user.has_perm(self.transition_permission):
            # Offer transitions only to people allowed to run them.
            actions = {name: a for name, a in actions.items() if not name.startswith("transition_")}
        return actions

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> Any:
        action = request.POST.get("action", "")
        if action.startswith("transition_") and not request.POST.get("reason", "").strip():
            self.message_user(
                request, "Give a reason: it is written to the audit log with your name.", messages.ERROR
            )
            return None
        return super().response_action(request, queryset)

    def run_transition(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        *,
        transition: str,
        call: Callable[[Model, str, str], Any],
    ) -> None:
        reason = request.POST.get("reason", "").strip()
        provider_reference = request.POST.get("provider_reference", "").strip()
        done, skipped = [], []
        for obj in queryset.order_by("pk"):
            method = getattr(obj, transition)
            if not (can_proceed(method) and has_transition_perm(method, request.user)):
                skipped.append(str(obj.pk))
                continue
            try:
                call(obj, reason, provider_reference)
            except ConcordError as exc:
                self.message_user(request, f"{obj}: {exc.message} ({exc.code})", messages.ERROR)
                continue
            done.append(str(obj.pk))
        if done:
            self.message_user(request, f"{transition}: done for {', '.join(done)}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{transition}: not allowed from the current state (or not permitted) for "
                f"{', '.join(skipped)}; skipped.",
                messages.WARNING,
            )


class RefundInline(ReadOnlyInline):
    model = Refund
    show_change_link = True
    fields = ("id", "amount", "currency", "status", "provider_refund_id", "reason", "created_at")
    readonly_fields = fields


class ProviderAttemptInline(ReadOnlyInline):
    model = ProviderAttempt
    fields = (
        "created_at",
        "kind",
        "outcome",
        "idempotency_key",
        "provider_object_id",
        "http_status",
        "duration_ms",
        "error",
    )
    readonly_fields = fields


@admin.register(Payment)
class PaymentAdmin(TransitionAdmin):
    transition_permission = "payments.resolve_payment"
    list_display = ("id", "order_id", "amount", "currency", "status", "refunded_amount", "provider_charge_id")
    list_filter = ("status", "currency")
    search_fields = ("=id", "=order_id", "=provider_charge_id")
    inlines = (RefundInline, ProviderAttemptInline, StateLogInline)
    actions = ("transition_capture", "transition_fail")

    @admin.action(description="Mark captured (give the provider's charge id)")
    def transition_capture(self, request: HttpRequest, queryset: QuerySet) -> None:
        def call(payment: Model, reason: str, charge_id: str) -> None:
            if not charge_id:
                raise ConcordError("A provider charge id is required.", code="provider_charge_id_invalid")
            services.payment_capture(
                payment_id=payment.pk, provider_charge_id=charge_id, by=_person(request), reason=reason
            )

        self.run_transition(request, queryset, transition="capture", call=call)

    @admin.action(description="Mark failed (no charge exists at the provider)")
    def transition_fail(self, request: HttpRequest, queryset: QuerySet) -> None:
        def call(payment: Model, reason: str, failure_code: str) -> None:
            services.payment_fail(
                payment_id=payment.pk,
                failure_code=failure_code or MANUAL_FAILURE_CODE,
                by=_person(request),
                reason=reason,
            )

        self.run_transition(request, queryset, transition="fail", call=call)


@admin.register(Refund)
class RefundAdmin(TransitionAdmin):
    transition_permission = "payments.resolve_refund"
    list_display = ("id", "payment", "amount", "currency", "status", "provider_refund_id", "created_at")
    list_filter = ("status", "currency")
    search_fields = ("=id", "=payment__id", "=provider_refund_id", "=idempotency_key")
    inlines = (StateLogInline,)
    actions = ("transition_succeed", "transition_fail")

    @admin.action(description="Mark succeeded (give the provider's refund id)")
    def transition_succeed(self, request: HttpRequest, queryset: QuerySet) -> None:
        def call(refund: Model, reason: str, refund_ref: str) -> None:
            if not refund_ref:
                raise ConcordError("A provider refund id is required.", code="provider_refund_id_invalid")
            services.refund_succeed(
                refund_id=refund.pk, provider_refund_id=refund_ref, by=_person(request), reason=reason
            )

        self.run_transition(request, queryset, transition="succeed", call=call)

    @admin.action(description="Mark failed (the provider refused the refund)")
    def transition_fail(self, request: HttpRequest, queryset: QuerySet) -> None:
        def call(refund: Model, reason: str, failure_code: str) -> None:
            services.refund_fail(
                refund_id=refund.pk,
                failure_code=failure_code or MANUAL_FAILURE_CODE,
                by=_person(request),
                reason=reason,
            )

        self.run_transition(request, queryset, transition="fail", call=call)


@admin.register(ProviderAttempt)
class ProviderAttemptAdmin(ReadOnlyAdmin):
    list_display = ("id", "payment", "kind", "outcome", "http_status", "duration_ms", "created_at")
    list_filter = ("kind", "outcome")
    search_fields = ("=payment__id", "=idempotency_key", "=provider_object_id")


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    can_delete = False
    fields = ("account", "amount", "currency")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "code", "currency")


@admin.register(LedgerBalanceByHour)
class LedgerBalanceByHourAdmin(ReadOnlyAdmin):
    list_display = ("account", "currency", "hour", "shard", "amount")
    list_filter = ("currency",)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "currency", "payment", "refund", "reference", "created_at")
    list_filter = ("kind", "currency")
    search_fields = ("=reference", "=payment__id", "=refund__id")
    inlines = (LedgerEntryInline,)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "transaction", "account", "amount", "currency")
    list_filter = ("account__code", "currency")


@admin.register(ProviderWebhookEvent)
class ProviderWebhookEventAdmin(ReadOnlyAdmin):
    """The webhook inbox: one row per provider event id, however often it was delivered."""

    list_display = ("event_id", "event_type", "deliveries", "outcome", "first_seen_at", "processed_at")
    list_filter = ("event_type", "outcome")
    search_fields = ("event_id", "note")
