from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "backoffice"

    def ready(self) -> None:
        # The admin's staff actions run through the back office's flow (core.staff_flow).
        from core import health

        from .admin_flow import provide
        from .sla import silent_processes

        provide()
        # /readyz names a worker or beat that has gone silent (details only; never unready).
        health.register_detail("processes", silent_processes)
