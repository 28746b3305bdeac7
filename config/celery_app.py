"""Celery application; every setting comes from Django settings' CELERY_* names.

Without DJANGO_SETTINGS_MODULE it loads production settings (fail closed, as wsgi.py)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("concord")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
