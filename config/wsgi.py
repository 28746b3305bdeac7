import os

from django.core.wsgi import get_wsgi_application

from core import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

# Before the application loads its middleware: the Django instrumentation adds its own.
tracing.setup(service_name="concord-web")

application = get_wsgi_application()
