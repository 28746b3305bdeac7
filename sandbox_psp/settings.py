"""Settings of the sandbox provider: a separate Django project with its own database.

Nothing here is shared with Concord (DESIGN §1). The sandbox reads only PSP_* variables,
so it can run next to Concord in one environment (`make run`) without picking up
Concord's DATABASE_URL or settings module.
"""

import os

import environ

env = environ.Env()

SECRET_KEY = "sandbox-psp-has-no-sessions-or-signed-cookies"  # noqa: S105 - nothing is signed with it
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["sandbox_psp"]
MIDDLEWARE = ["sandbox_psp.middleware.ApiMiddleware"]
ROOT_URLCONF = "sandbox_psp.urls"
WSGI_APPLICATION = "sandbox_psp.wsgi.application"

# A PostgreSQL database of its own (`make run` creates concord_psp beside concord).
DATABASES = {
    "default": env.db_url("PSP_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/concord_psp"),
}
# Threads keep their connection between requests (a new PostgreSQL connection per
# request costs more than the request itself).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("PSP_CONN_MAX_AGE", default=60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
# Requests are small JSON documents; a large body is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# --- The provider's own configuration ------------------------------------------

PSP_API_KEY = env.str("PSP_API_KEY", default="sk_test_concord")
PSP_WEBHOOK_URL = env.str("PSP_WEBHOOK_URL", default="") or None
PSP_WEBHOOK_SECRET = env.str("PSP_WEBHOOK_SECRET", default="whsec_concord_dev")
# First retry delay of a failed webhook delivery; doubles per attempt up to the cap.
PSP_WEBHOOK_RETRY_BASE_SECONDS = env.float("PSP_WEBHOOK_RETRY_BASE_SECONDS", default=1.0)
PSP_WEBHOOK_RETRY_CAP_SECONDS = env.float("PSP_WEBHOOK_RETRY_CAP_SECONDS", default=60.0)
# Each event waits a random 0..N ms before its first delivery, so events close in
# time may arrive out of order, as they do from real providers.
PSP_WEBHOOK_JITTER_MS = env.int("PSP_WEBHOOK_JITTER_MS", default=300)
PSP_WEBHOOK_TIMEOUT_SECONDS = env.float("PSP_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Stripe keeps idempotency keys 24 h; so do we (purged by the background thread).
PSP_IDEMPOTENCY_KEY_TTL_SECONDS = env.int("PSP_IDEMPOTENCY_KEY_TTL_SECONDS", default=24 * 3600)
PSP_DELIVERY_THREAD = env.bool("PSP_DELIVERY_THREAD", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s psp %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PSP_LOG_LEVEL", "INFO")},
    # One line per webhook POST is noise; failed deliveries are logged by webhooks.py.
    "loggers": {"httpx": {"level": "WARNING"}},
}
