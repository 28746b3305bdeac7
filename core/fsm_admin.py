"""Admin plumbing shared by the domain apps: state transitions as admin actions.

A transition is offered only when it is legal for some object on the page
(django_fsm's sources) and the user holds its `permission=`; running it checks
`can_proceed` and `has_transition_perm` per object again and then calls the
app's *service* (never the model method), with request.user and the reason typed
into the action bar, so the lock, the audit row and the side effects are the
service's as everywhere else.

Generic on purpose: it knows no model, so every app's admin may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.http import HttpRequest
from django_fsm import can_proceed, has_transition_perm

from core.errors import ConcordError

REASON_MAX_LENGTH = 500


class ReasonActionForm(ActionForm):
    """The action bar with the reason every manual change needs (DESIGN §6.8)."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        required=True,
        label="Reason",
        widget=forms.TextInput(attrs={"size": 40, "placeholder": "Why? (written to the audit log)"}),
    )


@dataclass(frozen=True)
class TransitionAction:
    """`transition` names the model method; `run(obj, by, reason)` calls the service.
    A `run` that returns a string has something to say (e.g. "waits for approval"):
    the admin shows it."""

    transition: str
    label: str
    run: Callable[[Any, Any, str], Any]


class FSMTransitionActionsMixin(admin.ModelAdmin):
    action_form = ReasonActionForm
    fsm_field: str = "status"
    transition_actions: tuple[TransitionAction, ...] = ()

    # --- which actions are offered ---------------------------------------------

    def _transition_specs(self) -> dict[str, tuple[set[str], Any]]:
        """transition name -> (source states, permission), from django_fsm's metadata."""
        field = self.model._meta.get_field(self.fsm_field)
        specs: dict[str, tuple[set[str], Any]] = {}
        for t in field.get_all_transitions(self.model):
            sources, _ = specs.setdefault(t.name, (set(), t.permission))
            sources.add(t.source)
        return specs

    def _states_in_view(self, request: HttpRequest) -> set[str]:
        """States of the objects the changelist can show: the state filter if set, else those present."""
        cache_attr = f"_fsm_states_{self.model._meta.label_lower}"
        if not hasattr(request, cache_attr):
            chosen = request.GET.get(f"{self.fsm_field}__exact")
            if chosen is not None:
                states = {chosen}
            else:
                states = set(
                    self.model._default_manager.order_by().values_list(self.fsm_field, flat=True).distinct()
                )
            setattr(request, cache_attr, states)
        return getattr(request, cache_attr)

    def _offered(self, request: HttpRequest, action: TransitionAction) -> bool:
        sources, permission = self._transition_specs()[action.transition]
        if permission and not request.user.has_perm(permission):
            return False
        return "*" in sources or bool(sources & self._states_in_view(request))

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        # Audited objects are never deleted from the admin.
        actions.pop("delete_selected", None)
        for action in self.transition_actions:
            if self._offered(request, action):
                name = f"transition_{action.transition}"
                actions[name] = (self._make_action(action), name, action.label)
        return actions

    # --- running one ----------------------------------------------------------------

    def _make_action(self, action: TransitionAction):
        def run_transition(modeladmin, request, queryset):
            reason = request.POST.get("reason", "").strip()
            if not reason:
                modeladmin.message_user(
                    request, "Give a reason: every manual change is audited.", messages.ERROR
                )
                return None
            done, skipped, failed, said = 0, [], [], []
            for obj in queryset.order_by("pk"):
                bound = getattr(obj, action.transition)
                if not (can_proceed(bound) and has_transition_perm(bound, request.user)):
                    skipped.append(str(obj.pk))
                    continue
                try:
                    result = action.run(obj, request.user, reason)
                except ConcordError as exc:
                    failed.append(f"{obj.pk}: {exc.message}")
                else:
                    done += 1
                    if isinstance(result, str):
                        said.append(result)
            if done:
                modeladmin.message_user(request, f"{action.label}: {done} done.", messages.SUCCESS)
            if skipped:
                modeladmin.message_user(
                    request,
                    f"{action.label}: not allowed for {', '.join(skipped)} (state or permission).",
                    messages.WARNING,
                )
            for failure in failed:
                modeladmin.message_user(request, f"{action.label} failed for {failure}", messages.ERROR)
            for text in said:
                modeladmin.message_user(request, text, messages.INFO)
            return None

        run_transition.__name__ = f"transition_{action.transition}"
        return run_transition

    def response_action(self, request: HttpRequest, queryset):
        # Django would say "No action selected." for a missing reason; say what is missing.
        chosen = request.POST.getlist("action")
        try:
            index = int(request.POST.get("index", 0))
        except ValueError:
            index = 0
        chosen_action = chosen[index] if index < len(chosen) else None
        if (
            chosen_action
            and chosen_action.startswith("transition_")
            and not request.POST.get("reason", "").strip()
        ):
            self.message_user(request, "Give a reason: every manual change is audited.", messages.ERROR)
            return None
        return super().response_action(request, queryset)

    # --- change page ----------------------------------------------------------------

    @admin.display(description="Possible actions now")
    def available_transitions(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        labels = [a.label for a in self.transition_actions if can_proceed(getattr(obj, a.transition))]
        return ", ".join(labels) or "none (final or system-driven state)"


class ReadOnlyAdmin(admin.ModelAdmin):
    """For rows that only services write (logs, records, audit): visible, never edited."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
