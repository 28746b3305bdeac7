from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Customer notifications"

    def ready(self) -> None:
        from outbox import registry

        from .consumer import CONSUMER

        registry.register(CONSUMER, replace=True)
