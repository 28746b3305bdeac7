from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks to shops and the events API"

    def ready(self) -> None:
        # Every worker's relay must know the consumer by name.
        from outbox import registry

        from .consumer import CONSUMER

        registry.register(CONSUMER, replace=True)
