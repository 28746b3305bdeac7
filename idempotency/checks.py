from datetime import timedelta

from django.conf import settings
from django.core.checks import Error, register


@register()
def ttl_is_at_least_a_day(app_configs, **kwargs):
    ttl = getattr(settings, "IDEMPOTENCY_TTL", None)
    if ttl is not None and ttl < timedelta(hours=24):
        return [
            Error(
                "IDEMPOTENCY_TTL must be at least 24 hours (DESIGN §4: keys are kept at least 24 h).",
                id="idempotency.E001",
            )
        ]
    return []
