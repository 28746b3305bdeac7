"""Events and consumer positions in the admin: read only (only the outbox writes them)."""

from django.contrib import admin

from core.fsm_admin import ReadOnlyAdmin

from .models import ConsumerState, Event, Sequencer


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "type", "aggregate_type", "aggregate_id", "created_at", "sequenced_at")
    list_filter = ("type", "aggregate_type")
    search_fields = ("=id", "=aggregate_id", "type")
    readonly_fields = [f.name for f in Event._meta.fields]


@admin.register(ConsumerState)
class ConsumerStateAdmin(ReadOnlyAdmin):
    list_display = ("name", "position", "last_delivered_at", "attempts", "next_attempt_at")
    readonly_fields = [f.name for f in ConsumerState._meta.fields]


@admin.register(Sequencer)
class SequencerAdmin(ReadOnlyAdmin):
    list_display = ("id", "last_sequence")
