"""Settings shared by every environment.

The environment is read once, here (django-environ). Concord speaks to one kind of
database, PostgreSQL, and one broker, Redis: the defaults are the local servers
(127.0.0.1:5432 and :6379), which `make run` starts itself when nothing listens
there (scripts/engines.py, docs/running.md).
"""

from datetime import timedelta
from pathlib import Path

import environ
from kombu import Queue

from core.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------

DEFAULT_SECRET_KEY = "insecure-dev-key-change-me"  # noqa: S105 - refused by production.py
SECRET_KEY = env.str("SECRET_KEY", default=DEFAULT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
WEB_PORT = env.int("WEB_PORT", default=8000)
PSP_PORT = env.int("PSP_PORT", default=8010)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # third party
    "rest_framework",
    "drf_spectacular",
    "django_fsm_log",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    # Concord: primitives
    "core",
    "apitokens",
    "sagas",
    "idempotency",
    "outbox",
    # Concord: domain
    "inventory",
    "payments",
    "orders",
    "reconciliation",
    # Concord: consumers of the outbox (the eventual side)
    "webhooks",
    "notifications",
    "readmodels",
    "backoffice",
    "monitoring",
]

MIDDLEWARE = [
    # Outermost: the request id, request metrics and the request's log line (core/middleware.py).
    "core.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout raised by its backend into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/concord"),
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# A database that does not answer is a 503 within seconds (core.outages), not a
# request hanging on the operating system's TCP timeout.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
)
# Statements built once per process (core.sql.fetchall_prepared: the back office's lists,
# an order's case file) run as prepared statements of the connection, planned once and
# then kept; every other statement keeps Django's client-side binding. Off (false)
# behind a pooler in transaction mode, which moves a client between server connections
# that do not hold its statements (docs/deployment.md).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
# Seconds an API client is told to wait (Retry-After) when the database is unreachable.
UNAVAILABLE_RETRY_AFTER = env.int("UNAVAILABLE_RETRY_AFTER", default=3)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttle counters must be shared by every web process) ------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache("CACHE_URL")}
else:
    # The broker's Redis; keys are prefixed so they never meet Celery's. Short socket
    # timeouts: a Redis that is down or stuck costs a request at most a second before
    # the throttle counts locally instead (core.api_throttling).
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",  # one redis-py client per pool (core/cache.py)
            "LOCATION": CELERY_BROKER_URL,
            "KEY_PREFIX": "concord-cache",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }

# --- Auth, i18n, static -----------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/backoffice/login/"
LOGIN_REDIRECT_URL = "/backoffice/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_AUTOREFRESH = False

# --- Staff sign-in, sessions, browser policy (docs/security.md) ---------------

# django-axes counts failed logins (back office and admin) per username and, separately,
# per client address; AXES_FAILURE_LIMIT failures lock that name or address out for
# AXES_COOLOFF_TIME. Behind proxies, TRUSTED_PROXY_COUNT says how many X-Forwarded-For
# hops to trust, or every client would share the proxy's address.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend, a person's permissions read in one statement built once (core/auth_backend.py)
    "core.auth_backend.PermissionsBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
# A staff session lasts a working day at most and ends with the browser.
SESSION_COOKIE_AGE = env.int("BACKOFFICE_SESSION_SECONDS", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Finance accounts must sign in with a TOTP code (django-otp) when this is on
# (production's default); any staff user with an enrolled device is always asked.
BACKOFFICE_FINANCE_OTP_REQUIRED = env.bool("BACKOFFICE_FINANCE_OTP_REQUIRED", default=False)
OTP_TOTP_ISSUER = "Concord"
# Content-Security-Policy (django-csp) in every environment, so the browser tests see
# what production serves: same-origin scripts, styles and images only, no inline code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# `seed_demo` creates demo logins only where this is on (local settings, `make run`).
DEMO_MODE = False
# /readyz shows which check failed only to staff or to a caller with this bearer token.
READYZ_TOKEN = env.str("READYZ_TOKEN", default="")

# --- Celery (config/celery_app.py reads every CELERY_* name) -----------------

# CELERY_BROKER_URL is read above (the cache shares its Redis).
# The visibility timeout must stay above the longest task's hard time limit, or Redis
# redelivers a message whose task is still running (DESIGN §3).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
if CELERY_BROKER_URL.startswith("redis://"):
    # kombu's Redis transport, keeping its publishing client (config/broker.py).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
CELERY_TASK_ACKS_LATE = True
# The eventual side's tasks (relay, webhook and e-mail senders, read models) get a queue
# of their own, so a backlog of saga steps never delays events. The Procfile gives the
# queues separate processes: `worker` consumes celery (sagas, sweeper, reconciliation),
# `events` consumes events and bulk; a worker started without -Q consumes every queue
# and the broker serves them in turn (docs/events.md, docs/deployment.md).
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Back-office bulk jobs (thousands of staff actions) get a third: a job neither waits
# behind the saga steps its retries start nor holds them up (docs/backoffice.md).
CELERY_TASK_QUEUES = (
    Queue("celery", routing_key="celery"),
    Queue("events", routing_key="events"),
    Queue("bulk", routing_key="bulk"),
)
CELERY_TASK_ROUTES = {
    "outbox.*": {"queue": "events"},
    "webhooks.*": {"queue": "events"},
    "notifications.*": {"queue": "events"},
    "readmodels.*": {"queue": "events"},
    "backoffice.bulk_*": {"queue": "bulk"},
    # Seconds of reading at 10M orders: not behind saga steps (backoffice/finance.py).
    "backoffice.finance_figures_refresh": {"queue": "bulk"},
}
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 150
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection before and after every task
# (since Celery 5.6; celery#4116, #9824) unless this is set: then only every this many
# tasks. Concord's own task signals (config/celery_app.py) apply Django's rules between
# tasks instead, as between requests: CONN_MAX_AGE and CONN_HEALTH_CHECKS decide, and a
# connection with errors is dropped. Without it a worker with CONN_MAX_AGE=60 opened a
# new PostgreSQL backend for every saga pass and every relay (issue 16).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=10_000)
# Saga engine (sagas/). Retry timing lives in SagaRun.next_attempt_at, never in
# Celery ETAs/countdowns, so the visibility timeout above only has to cover a task
# that is running: one advance pass, bounded by SAGA_PASS_BUDGET plus one step's
# timeout — far below CELERY_TASK_SOFT_TIME_LIMIT (120 s) < CELERY_TASK_TIME_LIMIT
# (150 s) < visibility_timeout (3600 s).
SAGA_LEASE_MARGIN = env.float("SAGA_LEASE_MARGIN", default=10.0)  # lease = step timeout + margin
SAGA_PASS_BUDGET = env.float("SAGA_PASS_BUDGET", default=60.0)  # a pass starts no step after this
SAGA_SWEEP_INTERVAL = env.float("SAGA_SWEEP_INTERVAL", default=5.0)
SAGA_SWEEP_GRACE = env.float("SAGA_SWEEP_GRACE", default=5.0)  # head start for the on-commit poke
SAGA_SWEEP_REQUEUE_AFTER = env.float("SAGA_SWEEP_REQUEUE_AFTER", default=30.0)
SAGA_SWEEP_BATCH = env.int("SAGA_SWEEP_BATCH", default=500)
# start_fresh hands a burst's runs on in at least SAGA_FRESH_FANOUT messages of at most
# SAGA_FRESH_CHUNK runs (sagas.advance_many), not one message per run; a chunk task
# starts no run after SAGA_CHUNK_BUDGET seconds and sends the rest on (docs/saga-engine.md).
# The chunks trade event lag for drain: at a steady 50 orders/s (more than 2 saga
# processes drain) chunks of 20 gave an outbox lag p99 of 417-1,151 ms against 213-262
# with 1 (a message per run), while on a 200-order burst they keep DBOS-running-
# Concord's-services at 1.27-1.70x against 0.96-1.15x with 1 (docs/benchmarks.md).
SAGA_FRESH_FANOUT = env.int("SAGA_FRESH_FANOUT", default=8)
SAGA_FRESH_CHUNK = env.int("SAGA_FRESH_CHUNK", default=20)
SAGA_CHUNK_BUDGET = env.float("SAGA_CHUNK_BUDGET", default=10.0)
CELERY_BEAT_SCHEDULE: dict = {
    "sagas-sweep": {
        "task": "sagas.sweep",
        "schedule": SAGA_SWEEP_INTERVAL,
        # A sweep that waited longer than one interval is superseded by the next.
        "options": {"expires": SAGA_SWEEP_INTERVAL},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Celery's default scheduler, recording each send as beat's heartbeat (core/heartbeats.py).
CELERY_BEAT_SCHEDULER = "core.heartbeats:RecordingScheduler"

# --- Payment provider --------------------------------------------------------

# The defaults are the sandbox's public development values: production.py refuses them.
DEFAULT_PSP_API_KEY = "sk_test_concord"
DEFAULT_PSP_WEBHOOK_SECRET = "whsec_concord_dev"  # noqa: S105
PSP_BASE_URL = env.str("PSP_BASE_URL", default=f"http://127.0.0.1:{PSP_PORT}")
PSP_API_KEY = env.str("PSP_API_KEY", default=DEFAULT_PSP_API_KEY)
PSP_WEBHOOK_URL = env.str("PSP_WEBHOOK_URL", default=f"http://127.0.0.1:{WEB_PORT}/api/v1/webhooks/psp/")
PSP_WEBHOOK_SECRET = env.str("PSP_WEBHOOK_SECRET", default=DEFAULT_PSP_WEBHOOK_SECRET)
PSP_CONNECT_TIMEOUT = env.float("PSP_CONNECT_TIMEOUT", default=2.0)
PSP_READ_TIMEOUT = env.float("PSP_READ_TIMEOUT", default=5.0)

# --- REST API (docs/api.md) ----------------------------------------------------

REST_FRAMEWORK = {
    # `Authorization: Token <key>`; only a SHA-256 digest of each key is stored (apitokens/).
    "DEFAULT_AUTHENTICATION_CLASSES": ["apitokens.authentication.DigestTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON in, JSON out: one canonical body form for idempotency fingerprints, and
    # stored responses that replay byte for byte. Other content types get 415.
    "DEFAULT_PARSER_CLASSES": ["core.api_parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": ["core.api_throttling.ClientRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"client": env.str("API_THROTTLE_RATE", default="600/min")},
    "DEFAULT_SCHEMA_CLASS": "core.api_schema.ConcordAutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
}
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)  # larger bodies: 413
# A token found active is trusted this long per web process without a query; a
# revoked token stops working in every process at most this much later
# (apitokens/authentication.py, docs/security.md). 0: look it up on every request.
API_TOKEN_CACHE_SECONDS = env.float("API_TOKEN_CACHE_SECONDS", default=5.0)
SPECTACULAR_SETTINGS = {
    "TITLE": "Concord API",
    "DESCRIPTION": "Orders, payments and stock kept in agreement.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public; an Authorization header on them is ignored.
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc from the drf-spectacular-sidecar package: no CDN needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several objects have a `status`: name each set of states after its owner.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.choices.OrderStatus",
        "PaymentStatusEnum": "payments.choices.PaymentStatus",
        "RefundStatusEnum": "payments.choices.RefundStatus",
        "EndpointStatusEnum": [("enabled", "enabled"), ("disabled", "disabled")],
    },
}
INSTALLED_APPS += ["drf_spectacular_sidecar"]  # static files of the docs page

# Idempotency-Key records (idempotency/): kept at least 24 h (DESIGN §4), then purged.
IDEMPOTENCY_TTL = timedelta(hours=env.int("IDEMPOTENCY_TTL_HOURS", default=24))
# How long a duplicate waits for the first request with its key before 409 idempotency_key_in_use.
IDEMPOTENCY_LOCK_TIMEOUT_MS = env.int("IDEMPOTENCY_LOCK_TIMEOUT_MS", default=2000)
CELERY_BEAT_SCHEDULE["idempotency-purge-expired"] = {
    "task": "idempotency.purge_expired",
    "schedule": 3600,
    "options": {"expires": 3600},
}

# --- Outbox, relay and consumers (docs/events.md) ----------------------------------

# Delivered events (applied by every consumer) are kept this many days, then pruned.
OUTBOX_RETENTION_DAYS = env.float("OUTBOX_RETENTION_DAYS", default=7)
# /readyz names a consumer whose oldest pending event is older than this (seconds).
OUTBOX_LAG_READY_SECONDS = env.float("OUTBOX_LAG_READY_SECONDS", default=60)
# The relay's safety-net poll: commits poke it at once; this catches a lost poke.
OUTBOX_POLL_INTERVAL = env.float("OUTBOX_POLL_INTERVAL", default=1.0)
OUTBOX_RELAY_BUDGET = env.float("OUTBOX_RELAY_BUDGET", default=10.0)
OUTBOX_RETRY_MAX_DELAY = env.float("OUTBOX_RETRY_MAX_DELAY", default=300.0)
CELERY_BEAT_SCHEDULE["outbox-relay"] = {
    "task": "outbox.relay",
    "schedule": OUTBOX_POLL_INTERVAL,
    "options": {"expires": max(OUTBOX_POLL_INTERVAL, 1.0)},
}
CELERY_BEAT_SCHEDULE["outbox-prune"] = {
    "task": "outbox.prune",
    "schedule": 3600,
    "options": {"expires": 3600},
}

# Webhooks to shops (webhooks/, docs/events.md). Loopback, private and link-local
# endpoint URLs are refused unless allowed (production.py turns this off).
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=True)
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)
WEBHOOK_EVENT_RETENTION_DAYS = env.float("WEBHOOK_EVENT_RETENTION_DAYS", default=30)
WEBHOOK_MAX_ENDPOINTS = env.int("WEBHOOK_MAX_ENDPOINTS", default=16)
WEBHOOK_POLL_INTERVAL = env.float("WEBHOOK_POLL_INTERVAL", default=5.0)
# Seconds before attempt 2, 3, ... (jitter ±10 %); the default retries for about 37 h.
if env.str("WEBHOOK_RETRY_SCHEDULE", default=""):
    WEBHOOK_RETRY_SCHEDULE = [float(s) for s in env.list("WEBHOOK_RETRY_SCHEDULE")]
CELERY_BEAT_SCHEDULE["webhooks-deliver"] = {
    "task": "webhooks.deliver",
    "schedule": WEBHOOK_POLL_INTERVAL,
    "options": {"expires": WEBHOOK_POLL_INTERVAL},
}
CELERY_BEAT_SCHEDULE["webhooks-prune"] = {
    "task": "webhooks.prune",
    "schedule": 3600,
    "options": {"expires": 3600},
}

# Customer notifications (notifications/, docs/events.md): Django's e-mail framework.
# Development prints them (console backend; EMAIL_BACKEND=...filebased.EmailBackend with
# EMAIL_FILE_PATH writes files); production sends through SMTP (EMAIL_HOST, EMAIL_PORT,
# EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Concord Shop <orders@concord.example>")
NOTIFICATIONS_POLL_INTERVAL = env.float("NOTIFICATIONS_POLL_INTERVAL", default=10.0)
CELERY_BEAT_SCHEDULE["notifications-send"] = {
    "task": "notifications.send_pending",
    "schedule": NOTIFICATIONS_POLL_INTERVAL,
    "options": {"expires": NOTIFICATIONS_POLL_INTERVAL},
}

# Read models (readmodels/, docs/consistency.md): compared with a fresh recomputation
# every READ_MODELS_CHECK_INTERVAL seconds; drift seen twice in a row opens an incident.
# Facts younger than the consumer's oldest pending event minus READ_MODELS_DRIFT_GRACE
# (seconds) are not compared yet.
READ_MODELS_CHECK_INTERVAL = env.float("READ_MODELS_CHECK_INTERVAL", default=600)
READ_MODELS_DRIFT_GRACE = env.float("READ_MODELS_DRIFT_GRACE", default=60)
# Each check is bounded (docs/consistency.md, "Checked"): the last RECENT_DAYS days
# (finance) / orders changed in them (search), the next OLD_DAYS older days / OLD_ORDERS
# older order ids (a cursor goes round the history), and what differed last time. Old
# drift is found within ceil(old days / OLD_DAYS) + 1 checks (search: order ids / OLD_ORDERS).
READ_MODELS_CHECK_RECENT_DAYS = env.int("READ_MODELS_CHECK_RECENT_DAYS", default=2)
READ_MODELS_CHECK_OLD_DAYS = env.int("READ_MODELS_CHECK_OLD_DAYS", default=7)
READ_MODELS_CHECK_OLD_ORDERS = env.int("READ_MODELS_CHECK_OLD_ORDERS", default=50_000)
CELERY_BEAT_SCHEDULE["readmodels-check"] = {
    "task": "readmodels.check",
    "schedule": READ_MODELS_CHECK_INTERVAL,
    "options": {"expires": READ_MODELS_CHECK_INTERVAL},
}

# --- Back office (docs/backoffice.md) -------------------------------------------

# A refund, cancellation or remediation needs a second person from finance when what it
# moves, plus what was already refunded or asked for the same order (pending refunds,
# pending approvals), is strictly above this amount (docs/security.md, item 2).
BACKOFFICE_APPROVAL_THRESHOLD = env.str("BACKOFFICE_APPROVAL_THRESHOLD", default="100.00")
# ... or when what one person moved without a second person today (UTC, per currency),
# plus this, is above this amount.
BACKOFFICE_APPROVAL_DAILY_LIMIT = env.str("BACKOFFICE_APPROVAL_DAILY_LIMIT", default="1000.00")
# Service levels per waiting state (backoffice/conf.py SLA_DEFAULTS has every key and its
# defaults; a JSON object here overrides some of them, e.g.
# BACKOFFICE_SLA='{"order_cancelling": {"attention_after": 600, "escalate_after": 1800}}').
# refund_pending's attention limit is REFUND_PENDING_SLA_SECONDS below (one refund SLA
# for the page and the refund_pending detector); a different one here stops startup.
# Past attention_after (seconds in the state) an item climbs the overview's "needs
# attention" list; past escalate_after it is e-mailed once to its `notify` group.
BACKOFFICE_SLA = env.json("BACKOFFICE_SLA", default={})
# Who the escalation e-mails go to, per group; an empty list means the active users of
# the back-office role of that name who have an e-mail address (finance; on-call = support).
BACKOFFICE_SLA_RECIPIENTS = {
    "finance": env.list("BACKOFFICE_SLA_FINANCE_EMAILS", default=[]),
    "oncall": env.list("BACKOFFICE_SLA_ONCALL_EMAILS", default=[]),
}
# Where staff open the back office, for the links in those e-mails (e.g.
# https://ops.shop.example); empty: the links are paths only.
BACKOFFICE_BASE_URL = env.str("BACKOFFICE_BASE_URL", default="")
# How long a back-office page keeps a probe's answer (the provider's health check, the
# outbox consumers' lag, the worker and beat heartbeats), per process: backoffice/probes.py.
BACKOFFICE_PROBE_SECONDS = env.float("BACKOFFICE_PROBE_SECONDS", default=5.0)
# How long the overview keeps its count panels (sagas waiting for a person, incidents and
# money at risk, per-state counts past the attention limit, last reconciliation, pending
# approvals) and the waiting page its per-state counts, per process; the pages say "as
# of" beside them. The lists (the items themselves) are read at every request.
BACKOFFICE_COUNTS_SECONDS = env.float("BACKOFFICE_COUNTS_SECONDS", default=5.0)
# How old the finance page's history figures and service levels (they read a whole
# range's incidents, orders and saga runs) may be before a view queues their refresh
# (backoffice/finance.py: the page serves the kept ones meanwhile, never recomputes them
# inline; kept a day in the shared cache). 0: computed at every view.
BACKOFFICE_FINANCE_FIGURES_SECONDS = env.float("BACKOFFICE_FINANCE_FIGURES_SECONDS", default=60.0)
# How often beat refreshes the default range (the last 30 days) whether or not anyone
# looks, so the kept figures never expire and nobody waits for them. Longer than the
# view's interval on purpose: a refresh holds the events worker's one slot for seconds
# at 10M orders (docs/events.md), so doing it every minute would add that to event lag
# every minute; viewers refresh it more often only while they look. 0: no beat entry.
BACKOFFICE_FINANCE_WARM_SECONDS = env.float("BACKOFFICE_FINANCE_WARM_SECONDS", default=900.0)
if BACKOFFICE_FINANCE_FIGURES_SECONDS > 0 and BACKOFFICE_FINANCE_WARM_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["backoffice-finance-figures"] = {
        "task": "backoffice.finance_figures_refresh",
        "schedule": BACKOFFICE_FINANCE_WARM_SECONDS,
        "options": {"expires": BACKOFFICE_FINANCE_WARM_SECONDS},
    }
BACKOFFICE_SLA_ESCALATE_INTERVAL = env.float("BACKOFFICE_SLA_ESCALATE_INTERVAL", default=60.0)
CELERY_BEAT_SCHEDULE["backoffice-sla-escalate"] = {
    "task": "backoffice.sla_escalate",
    "schedule": BACKOFFICE_SLA_ESCALATE_INTERVAL,
    "options": {"expires": BACKOFFICE_SLA_ESCALATE_INTERVAL},
}
# The overview's "Systems": a worker that took no task, or a beat that sent none, for
# this long is reported (beat sends sagas.sweep every SAGA_SWEEP_INTERVAL seconds, so
# a healthy system never stays quiet this long).
BACKOFFICE_WORKER_SILENT_AFTER = env.float("BACKOFFICE_WORKER_SILENT_AFTER", default=120.0)
BACKOFFICE_BEAT_SILENT_AFTER = env.float("BACKOFFICE_BEAT_SILENT_AFTER", default=120.0)

# --- Audit --------------------------------------------------------------------

DJANGO_FSM_LOG_IGNORED_MODELS: tuple = ()
# Like django-fsm-log's SimpleBackend (a row per transition, at once), except
# inside core.audit_batch.audit_batch(): one multi-row INSERT per block (a saga
# checkpoint).
DJANGO_FSM_LOG_STORAGE_METHOD = "core.audit_batch.BatchingBackend"

# --- Logging, metrics, tracing (docs/operations.md) ------------------------------------

# json: one JSON object per line (production, log search); console: readable (make run).
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)

# /metrics: with METRICS_TOKEN set, only `Authorization: Bearer <token>` may read it;
# without one it is open unless METRICS_REQUIRE_TOKEN (production: on, so an unset
# token means nobody may read it from outside).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_REQUIRE_TOKEN = env.bool("METRICS_REQUIRE_TOKEN", default=False)
# Database and broker gauges are recomputed at most this often per process.
METRICS_STATE_TTL = env.float("METRICS_STATE_TTL", default=10.0)
# A worker-only host serves its processes' metrics itself (0 = off; see docs/deployment.md).
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_ADDR = env.str("WORKER_METRICS_ADDR", default="127.0.0.1")

# OpenTelemetry (core/tracing.py): off unless asked for.
OTEL_ENABLED = env.bool("OTEL_ENABLED", default=False)
OTEL_TRACES_FILE = env.str("OTEL_TRACES_FILE", default="")

# Consistency SLOs (docs/operations.md): the finance page measures against these, and
# /metrics exposes them (concord_slo_target) for the alert rules to compare with.
SLO = {
    # p99 of the time from acceptance to confirmation of a confirmed order.
    "ORDER_CONFIRM_SECONDS": env.float("SLO_ORDER_CONFIRM_SECONDS", default=30.0),
    # Saga runs stuck (failed, compensation failed, past their SLA) per 1,000 orders.
    "SAGAS_STUCK_PER_1000": env.float("SLO_SAGAS_STUCK_PER_1000", default=1.0),
    # Money at risk in incidents older than this is a breach (target: none).
    "MONEY_AT_RISK_MAX_AGE_SECONDS": env.int("SLO_MONEY_AT_RISK_MAX_AGE_SECONDS", default=3600),
    # Incidents whose fix is a refund, per 1,000 orders placed.
    "REFUND_INCIDENTS_PER_1000": env.float("SLO_REFUND_INCIDENTS_PER_1000", default=1.0),
}

# --- Reconciliation (reconciliation/conf.py holds the defaults) ----------------------

RECONCILE_INTERVAL = env.int("RECONCILE_INTERVAL", default=60)  # seconds between passes
RECONCILIATION = {
    "SYNC_OVERLAP_SECONDS": env.int("RECONCILE_SYNC_OVERLAP_SECONDS", default=300),
    # An order pending longer than this is stuck (charge_without_order, stuck sagas).
    "PENDING_ORDER_SLA_SECONDS": env.int("PENDING_ORDER_SLA_SECONDS", default=900),
    # Detectors comparing Concord with the provider skip rows younger than this (in flight).
    "SETTLE_SECONDS": env.int("RECONCILE_SETTLE_SECONDS", default=60),
    # The refund SLA: a refund still pending this long after it was asked for opens a
    # refund_pending incident (the sweeper below has been resending it all along;
    # docs/reconciliation.md) and is on the back office's "Needs attention" list — one
    # setting for both (reconciliation.conf.refund_pending_sla_seconds; docs/backoffice.md).
    "REFUND_PENDING_SLA_SECONDS": env.int("REFUND_PENDING_SLA_SECONDS", default=1800),
    "DISABLED_DETECTORS": env.list("RECONCILE_DISABLED_DETECTORS", default=[]),
    # Which remediations may run without a person, up to what amount (in the incident's
    # currency). Money-moving automation is off by default: enable per type, deliberately.
    "AUTO_REMEDIATION": {
        "duplicate_charge": {"enabled": False, "max_amount": "0.00"},  # refund the extra charge
        "charge_without_order": {"enabled": False, "max_amount": "0.00"},  # refund the orphan
        "refund_missing": {"enabled": False, "max_amount": "0.00"},  # issue the refund
        "stock_drift": {"enabled": False},  # release stale reservations (moves no money)
        # stuck_saga has no automatic fix: the saga engine's manual operations need a person.
    },
}
# Every refund Concord asked for is a durable intent (a pending Refund row with its
# provider key): the sweeper sends those still pending after PAYMENTS_REFUND_RESUME_AFTER
# seconds again — a lost after-commit message, a killed worker, retries that ran out.
PAYMENTS_REFUND_RESUME_AFTER = env.int("PAYMENTS_REFUND_RESUME_AFTER", default=120)
PAYMENTS_REFUND_SWEEP_INTERVAL = env.int("PAYMENTS_REFUND_SWEEP_INTERVAL", default=60)
CELERY_BEAT_SCHEDULE["payments-refunds-resume"] = {
    "task": "payments.refunds_resume",
    "schedule": PAYMENTS_REFUND_SWEEP_INTERVAL,
    "options": {"expires": PAYMENTS_REFUND_SWEEP_INTERVAL},
}
CELERY_BEAT_SCHEDULE["reconcile"] = {
    "task": "reconciliation.reconcile",
    "schedule": RECONCILE_INTERVAL,
    # A tick nobody picked up before the next one is worthless: do not pile them up.
    "options": {"expires": RECONCILE_INTERVAL},
}
# clearing_mismatch reads the provider's charges from a running balance kept by triggers
# (docs/reconciliation.md, "Running balance"); this often, it is recomputed from every
# charge and a difference opens a read_model_drift incident.
RECONCILE_VERIFY_BALANCES_INTERVAL = env.int("RECONCILE_VERIFY_BALANCES_INTERVAL", default=3600)
CELERY_BEAT_SCHEDULE["reconciliation-verify-balances"] = {
    "task": "reconciliation.verify_balances",
    "schedule": RECONCILE_VERIFY_BALANCES_INTERVAL,
    "options": {"expires": RECONCILE_VERIFY_BALANCES_INTERVAL},
}

# Back-office bulk actions (backoffice/bulk.py, docs/backoffice.md "Bulk actions"): a
# worker works on a job for BACKOFFICE_BULK_CHUNK_SECONDS, then queues the rest (saga
# steps and other tasks run in between); a job whose worker died is handed to another
# by the sweeper once its lease (chunk + margin) ran out.
BACKOFFICE_BULK_MAX_ITEMS = env.int("BACKOFFICE_BULK_MAX_ITEMS", default=20_000)
BACKOFFICE_BULK_CHUNK_SECONDS = env.float("BACKOFFICE_BULK_CHUNK_SECONDS", default=10.0)
BACKOFFICE_BULK_LEASE_SECONDS = env.float("BACKOFFICE_BULK_LEASE_SECONDS", default=60.0)
BACKOFFICE_BULK_SWEEP_INTERVAL = env.float("BACKOFFICE_BULK_SWEEP_INTERVAL", default=15.0)
CELERY_IMPORTS = ("backoffice.bulk_tasks",)
CELERY_BEAT_SCHEDULE["backoffice-bulk-resume"] = {
    "task": "backoffice.bulk_resume",
    "schedule": BACKOFFICE_BULK_SWEEP_INTERVAL,
    "options": {"expires": BACKOFFICE_BULK_SWEEP_INTERVAL},
}
