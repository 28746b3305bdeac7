from django.apps import AppConfig


class SandboxPspConfig(AppConfig):
    name = "sandbox_psp"
    verbose_name = "Sandbox payment provider"
