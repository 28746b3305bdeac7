from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """/metrics, the state gauges behind it, the §6 invariant checks and `simulate`.
    Reads every app through its selectors; nothing imports it (but config's URLs)."""

    name = "monitoring"
    verbose_name = "Monitoring"
