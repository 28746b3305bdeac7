"""Django admin for saga runs: state read-only, the step log and manual actions
inline, and the manual operations as buttons offered only when legal and permitted
(saga_operations_allowed, as in the back office). Each operation asks for a reason and
runs through the back office's flow (core.staff_flow: the same operation, permission,
audit row as the case file; issue 13, item 5), which calls sagas.services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core.errors import ConcordError
from core.fsm_admin import ReadOnlyAdmin, ReadOnlyInline
from core.staff_flow import SAGA_OPERATE, staff_flow_run

from .choices import ManualAction
from .models import SagaAction, SagaRun, SagaStepLog
from .selectors import run_to_dto, saga_operations_allowed

OPERATIONS = frozenset(ManualAction.values)


class OperationForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


class StepLogInline(ReadOnlyInline):
    model = SagaStepLog
    fields = readonly_fields = (
        "started_at",
        "step",
        "direction",
        "attempt",
        "outcome",
        "duration_ms",
        "worker",
        "error",
    )
    ordering = ("id",)


class ActionInline(ReadOnlyInline):
    model = SagaAction
    fields = readonly_fields = (
        "created_at",
        "action",
        "by_username",
        "reason",
        "from_status",
        "to_status",
        "step",
    )
    ordering = ("id",)


@admin.register(SagaRun)
class SagaRunAdmin(admin.ModelAdmin):
    list_display = ("id", "saga_type", "subject_id", "status", "step", "direction", "attempts", "updated_at")
    list_filter = ("status", "saga_type", "direction")
    search_fields = ("=id", "subject_id")
    ordering = ("-id",)
    inlines = (StepLogInline, ActionInline)
    change_form_template = "admin/sagas/sagarun/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        return {}

    def get_urls(self):
        return [
            path(
                "<int:run_id>/operate/<str:operation>/",
                self.admin_site.admin_view(self.operate_view),
                name="sagas_sagarun_operate",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        run = SagaRun.objects.filter(pk=object_id).first()
        if run is not None:
            extra_context["saga_operations"] = [
                (ManualAction(op).label, reverse("admin:sagas_sagarun_operate", args=[run.pk, op]))
                for op in saga_operations_allowed(run=run_to_dto(run), user=request.user)
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    def operate_view(self, request, run_id: int, operation: str):
        run = get_object_or_404(SagaRun, pk=run_id)
        if operation not in OPERATIONS:
            raise PermissionDenied
        if operation not in saga_operations_allowed(run=run_to_dto(run), user=request.user):
            messages.error(request, f"{ManualAction(operation).label} is not possible for this run now.")
            return redirect("admin:sagas_sagarun_change", run_id)
        form = OperationForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                said = staff_flow_run(
                    SAGA_OPERATE,
                    run_id=run.pk,
                    op=operation,
                    by=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except ConcordError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, said)
            return redirect("admin:sagas_sagarun_change", run_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "run": run,
            "form": form,
            "operation": ManualAction(operation),
            "title": f"{ManualAction(operation).label}: {run}",
        }
        return TemplateResponse(request, "admin/sagas/sagarun/operate.html", context)


@admin.register(SagaStepLog)
class SagaStepLogAdmin(ReadOnlyAdmin):
    """Every attempt of every step: the timeline support reads, searchable on its own."""

    list_display = (
        "id",
        "run",
        "step",
        "direction",
        "attempt",
        "outcome",
        "duration_ms",
        "worker",
        "started_at",
    )
    list_filter = ("outcome", "direction", "step")
    search_fields = ("error", "worker")
    list_select_related = ("run",)


@admin.register(SagaAction)
class SagaActionAdmin(ReadOnlyAdmin):
    """Manual operations on runs: who, why, from which state to which."""

    list_display = ("id", "run", "action", "by_username", "from_status", "to_status", "step", "created_at")
    list_filter = ("action",)
    search_fields = ("reason", "by_username")
    list_select_related = ("run",)
