"""Bench-only URLconf for "POST orders/ before the outbox": the same API with the
order.placed event not recorded (no INSERT, no relay poke), so the bench can put a
number on what the outbox costs the accepting path. Never used by the app."""

import orders.services
from bench.api_urls import urlpatterns  # noqa: F401 - the same routes

# The one event on the accepting path; every other fact is recorded by the saga.
orders.services.order_event_record = lambda *args, **kwargs: None
