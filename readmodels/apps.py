from django.apps import AppConfig


class ReadModelsConfig(AppConfig):
    name = "readmodels"
    verbose_name = "Read models (finance, search)"

    def ready(self) -> None:
        from outbox import registry

        from .consumer import CONSUMERS

        for consumer in CONSUMERS:
            registry.register(consumer, replace=True)
