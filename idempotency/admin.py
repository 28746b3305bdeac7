from django.contrib import admin

from idempotency.models import IdempotencyRecord


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    """Read-only: records are written by the API in the request's transaction."""

    list_display = (
        "client_id",
        "key",
        "request_method",
        "request_path",
        "state",
        "response_status",
        "created_at",
        "expires_at",
    )
    list_filter = ("state", "response_status")
    search_fields = ("key", "request_path")
    exclude = ("response_body",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
