"""Settings for bench/api_throughput.py only: the production-like base settings plus
the bench URLconf, which adds the floor endpoint. Never used by the app itself."""

from config.settings.base import *  # noqa: F403

ROOT_URLCONF = "bench.api_urls"
DEBUG = False
