"""bench/api_settings.py with the order.placed event switched off (see api_urls_no_outbox)."""

from bench.api_settings import *  # noqa: F403

ROOT_URLCONF = "bench.api_urls_no_outbox"
