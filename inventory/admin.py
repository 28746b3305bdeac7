"""Inventory in the Django admin. Counters and states are never edited by hand:
every change goes through a service (with the staff user and a reason)."""

from __future__ import annotations

from decimal import InvalidOperation

from django import forms
from django.contrib import admin, messages
from django_fsm_log.admin import StateLogInline

from core.errors import ConcordError
from core.fsm_admin import FSMTransitionActionsMixin, ReasonActionForm, TransitionAction
from core.money import quantize

from . import services
from .models import Product, Reservation, StockLevel, StockMovement


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["sku", "name", "price", "currency", "active"]

    def clean(self):
        data = super().clean() or {}
        price, currency = data.get("price"), data.get("currency")
        if price is not None and currency:
            try:
                exact = quantize(price, currency) == price
            except InvalidOperation:
                exact = False
            if not exact:
                self.add_error("price", f"{currency} does not allow this precision.")
        return data


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductForm
    list_display = ["sku", "name", "price", "currency", "active", "on_hand", "reserved"]
    list_filter = ["active", "currency"]
    search_fields = ["sku", "name"]
    list_select_related = ["stock"]

    def get_readonly_fields(self, request, obj=None):
        return ["sku"] if obj is not None else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="On hand")
    def on_hand(self, obj: Product) -> int:
        return obj.stock.on_hand

    @admin.display(description="Reserved")
    def reserved(self, obj: Product) -> int:
        return obj.stock.reserved

    def save_model(self, request, obj, form, change) -> None:
        # Through the service so the stock row exists for every product.
        services.product_upsert(
            sku=obj.sku, name=obj.name, price=obj.price, currency=obj.currency, active=obj.active
        )
        obj.pk = Product.objects.only("pk").get(sku=obj.sku).pk


class StockActionForm(ReasonActionForm):
    on_hand = forms.IntegerField(min_value=0, required=False, label="New on hand")


@admin.register(StockLevel)
class StockLevelAdmin(ReadOnlyAdmin):
    action_form = StockActionForm
    list_display = ["product", "on_hand", "reserved", "available", "updated_at"]
    search_fields = ["product__sku"]
    actions = ["set_on_hand"]

    @admin.display(description="Available")
    def available(self, obj: StockLevel) -> int:
        return obj.available

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Set on-hand stock (stock take)", permissions=["change"])
    def set_on_hand(self, request, queryset) -> None:
        reason = request.POST.get("reason", "").strip()
        try:
            on_hand = StockActionForm.base_fields["on_hand"].clean(request.POST.get("on_hand"))
        except forms.ValidationError:
            on_hand = None
        if on_hand is None or not reason:
            self.message_user(request, "Give the new on-hand count and a reason.", messages.ERROR)
            return
        for level in queryset.order_by("product_id"):
            try:
                services.stock_set_on_hand(
                    sku=level.product_id, on_hand=on_hand, by=request.user, reason=reason
                )
            except ConcordError as exc:
                self.message_user(request, f"{level.product_id}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{level.product_id}: on hand set.", messages.SUCCESS)


@admin.register(Reservation)
class ReservationAdmin(FSMTransitionActionsMixin, ReadOnlyAdmin):
    fsm_field = "state"
    list_display = ["id", "order_id", "product", "quantity", "state", "updated_at"]
    list_filter = ["state"]
    search_fields = ["=order_id", "product__sku"]
    inlines = [StateLogInline]
    transition_actions = (
        TransitionAction(
            transition="release",
            label="Release held stock of the order",
            # Stock is held per order: releasing one line's order releases all its lines.
            run=lambda obj, by, reason: services.stock_release(order_id=obj.order_id, by=by, reason=reason),
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "available_transitions"]


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdmin):
    list_display = ["id", "product", "delta", "kind", "order_id", "by", "reason", "created_at"]
    list_filter = ["kind"]
    search_fields = ["product__sku", "=order_id"]
