from celery import shared_task

from idempotency.services import idempotency_purge_expired


@shared_task(name="idempotency.purge_expired")
def purge_expired() -> int:
    """Beat runs this hourly (settings CELERY_BEAT_SCHEDULE)."""
    return idempotency_purge_expired()
