from django.contrib import admin

from core.fsm_admin import ReadOnlyAdmin

from .models import Notification


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "order_id", "to", "apology", "status", "created_at", "sent_at")
    list_filter = ("kind", "status", "apology")
    search_fields = ("=order_id", "to")
    readonly_fields = [f.name for f in Notification._meta.fields]
