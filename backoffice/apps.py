from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "backoffice"

    def ready(self) -> None:
        # A bad BACKOFFICE_SLA (or one that contradicts REFUND_PENDING_SLA_SECONDS) stops
        # every process at startup, not the first page or beat run that reads it.
        from django.core.exceptions import ImproperlyConfigured

        from .conf import sla_limits

        try:
            sla_limits()
        except ValueError as error:
            raise ImproperlyConfigured(str(error)) from None

        # The admin's staff actions run through the back office's flow (core.staff_flow).
        from core import health

        from .admin_flow import provide
        from .sla import silent_processes

        provide()
        # /readyz names a worker or beat that has gone silent (details only; never unready).
        health.register_detail("processes", silent_processes)
