from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        # Web processes and workers alike must know the order sagas by name.
        from .sagas import register_order_sagas

        register_order_sagas(replace=True)
