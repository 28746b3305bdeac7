from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Outbox (events, relay, consumers)"

    def ready(self) -> None:
        # /readyz shows consumer lag past OUTBOX_LAG_READY_SECONDS (core knows no app:
        # the check is registered from here).
        from core import health

        from .selectors import outbox_lag_report

        health.register_detail("outbox", outbox_lag_report)
