from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "backoffice"

    def ready(self) -> None:
        # The admin's staff actions run through the back office's flow (core.staff_flow).
        from .admin_flow import provide

        provide()
