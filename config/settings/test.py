"""The test suite: real PostgreSQL and Redis (base.py's defaults, or DATABASE_URL /
CELERY_BROKER_URL)."""

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
