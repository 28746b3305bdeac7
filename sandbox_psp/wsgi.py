"""WSGI entry: `gunicorn sandbox_psp.wsgi` (see the `psp` line of the Procfile).

The settings module is forced, not defaulted: `make run` exports Concord's
DJANGO_SETTINGS_MODULE to every process, and the sandbox must never load it.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "sandbox_psp.settings"

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

from sandbox_psp.webhooks import start_delivery_thread  # noqa: E402 - needs the app registry

# Started in each server process after the fork (gunicorn imports this module in
# the worker unless --preload), so every process delivers its share of the outbox.
start_delivery_thread()
