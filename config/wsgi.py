"""WSGI entry point. Without DJANGO_SETTINGS_MODULE it loads production settings, which
refuse to start on default secrets: a deployment that forgets the variable fails
closed instead of serving with DEBUG on (`make run` names config.settings.local)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_wsgi_application()
