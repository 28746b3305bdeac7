"""WSGI entry point. Without DJANGO_SETTINGS_MODULE it loads production settings, which
refuse to start on default secrets: a deployment that forgets the variable fails
closed instead of serving with DEBUG on (`make run` names config.settings.local)."""

import os

from django.core.wsgi import get_wsgi_application

from core import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

# Before the application loads its middleware: the Django instrumentation adds its own.
tracing.setup(service_name="concord-web")

application = get_wsgi_application()
