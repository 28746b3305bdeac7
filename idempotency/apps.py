from django.apps import AppConfig


class IdempotencyConfig(AppConfig):
    name = "idempotency"

    def ready(self) -> None:
        from idempotency import checks  # noqa: F401 - registers the system check
