"""The test suite: real PostgreSQL and Redis (base.py's defaults, or DATABASE_URL /
CELERY_BROKER_URL)."""

import os
import tempfile

# Metrics in prometheus-client's multiprocess mode, as in production. Set here, before
# any app imports core.metrics; the worker and web processes tests start inherit it,
# so /metrics in the test process sees their samples too. tests/conftest.py removes
# the directory at the end of the session that made it.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="concord-test-metrics-")
    os.environ["CONCORD_TEST_METRICS_DIR_OWNER"] = str(os.getpid())

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Probes (provider health, consumers' lag, heartbeats) are read on every request, so a
# test that changes what they read sees it at once; tests of the keeping set it themselves.
BACKOFFICE_PROBE_SECONDS = 0
BACKOFFICE_COUNTS_SECONDS = 0
BACKOFFICE_FINANCE_FIGURES_SECONDS = 0
