from django.contrib import admin

from core.fsm_admin import ReadOnlyAdmin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Which tokens exist and whether they work; never the token or its digest. Tokens are
    issued, rotated and revoked with create_api_client / rotate_api_token / revoke_api_token."""

    list_display = ("prefix", "user", "created_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("user__username", "prefix")
    list_select_related = ("user",)
    fields = ("user", "prefix", "created_at", "expires_at", "revoked_at")
