"""Production: fails closed. It refuses to start (ImproperlyConfigured, naming the
setting) with DEBUG on, a default or short secret, no explicit ALLOWED_HOSTS, or the
sandbox provider, and turns on the HTTPS hardening `manage.py check --deploy` asks for.
docs/security.md has the checklist."""

import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from core.logs import logging_config

from .base import *  # noqa: F403
from .base import (
    DATABASES,
    DEFAULT_PSP_API_KEY,
    DEFAULT_PSP_WEBHOOK_SECRET,
    DEFAULT_SECRET_KEY,
    LOG_LEVEL,
    PSP_API_KEY,
    PSP_BASE_URL,
    PSP_WEBHOOK_SECRET,
    SECRET_KEY,
    env,
)

MIN_SECRET_LENGTH = 32


def _require_secret(name: str, value: str, default: str, min_length: int = MIN_SECRET_LENGTH) -> None:
    # Five distinct characters at least, as Django's own SECRET_KEY check asks: "xxxx…" is not random.
    if not value or value == default or len(value) < min_length or len(set(value)) < 5:
        raise ImproperlyConfigured(
            f"Set {name} to a random value of at least {min_length} characters in production "
            "(not the public development default)."
        )


def _is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain"} or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production.")
_require_secret("SECRET_KEY", SECRET_KEY, DEFAULT_SECRET_KEY, min_length=50)

# --- Hosts: named explicitly, never a wildcard or the development default ----------

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("Set ALLOWED_HOSTS to the site's host names (comma-separated, no '*').")
# Other origins allowed to POST forms (e.g. https://backoffice.example.com behind another name).
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- The payment provider: a forged event needs only the webhook secret ---------------

_require_secret("PSP_WEBHOOK_SECRET", PSP_WEBHOOK_SECRET, DEFAULT_PSP_WEBHOOK_SECRET)
_require_secret("PSP_API_KEY", PSP_API_KEY, DEFAULT_PSP_API_KEY)
# The sandbox (a loopback or plain-HTTP provider) only where someone said so on purpose,
# e.g. a staging stack that runs sandbox_psp next to production settings.
PSP_ALLOW_SANDBOX = env.bool("PSP_ALLOW_SANDBOX", default=False)
_provider = urlsplit(PSP_BASE_URL)
if not PSP_ALLOW_SANDBOX and (_provider.scheme != "https" or _is_loopback(_provider.hostname or "")):
    raise ImproperlyConfigured(
        f"PSP_BASE_URL={PSP_BASE_URL!r} is the sandbox or not HTTPS: set the real provider's https URL, "
        "or PSP_ALLOW_SANDBOX=true to run against the sandbox on purpose."
    )

# --- HTTPS (behind a TLS-terminating proxy that sets X-Forwarded-Proto) ---------------

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Load balancers probe, and Prometheus scrapes (token-protected), over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Trust X-Forwarded-Proto only from a proxy that overwrites it (docs/security.md).
if env.bool("BEHIND_TLS_PROXY", default=True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Staff sign-in -------------------------------------------------------------------

BACKOFFICE_FINANCE_OTP_REQUIRED = env.bool("BACKOFFICE_FINANCE_OTP_REQUIRED", default=True)

# --- Database connections -------------------------------------------------------------

# Kept between requests and tasks (docs/deployment.md sizes them: one per web thread and
# per worker process). base.py's 0 opens a new PostgreSQL connection for every request
# and every Celery task, twice on the way from an order to its confirmation
# (docs/benchmarks.md, "Place -> confirmed latency"). A connection the server dropped
# is found by the health check before use, not by the request that needs it.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# --- Logs and metrics (docs/operations.md) ---------------------------------------------

# JSON log lines for the log search; /metrics answers only with METRICS_TOKEN
# (docs/operations.md): an unset token means nobody may read it.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)
METRICS_REQUIRE_TOKEN = env.bool("METRICS_REQUIRE_TOKEN", default=True)

# Webhook endpoints must be public addresses (no SSRF into our own network).
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=False)
# Real e-mail in production: SMTP unless EMAIL_BACKEND says otherwise.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
