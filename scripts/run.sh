#!/usr/bin/env bash
# `make run`: everything up on this machine (web, worker, beat, sandbox provider).
# Embedded default (SQLite + filesystem broker) unless DATABASE_URL /
# CELERY_BROKER_URL are set. Ctrl-C stops every process (honcho).
set -euo pipefail
cd "$(dirname "$0")/.."

export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
export WEB_PORT="${WEB_PORT:-8000}"
export PSP_PORT="${PSP_PORT:-8010}"
export PSP_BASE_URL="${PSP_BASE_URL:-http://127.0.0.1:${PSP_PORT}}"
export PSP_API_KEY="${PSP_API_KEY:-sk_test_concord}"
export PSP_WEBHOOK_URL="${PSP_WEBHOOK_URL:-http://127.0.0.1:${WEB_PORT}/api/v1/webhooks/psp/}"
export PSP_WEBHOOK_SECRET="${PSP_WEBHOOK_SECRET:-whsec_concord_dev}"
export PYTHONUNBUFFERED=1
# Readable log lines here (production defaults to JSON); metrics of every process of
# this machine in one directory, merged by /metrics (docs/operations.md).
export LOG_FORMAT="${LOG_FORMAT:-console}"
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

mkdir -p var/broker/out var/broker/processed
PY=.venv/bin/python

echo "Database: ${DATABASE_URL:-embedded SQLite (var/concord.sqlite3)}"
echo "Broker:   ${CELERY_BROKER_URL:-embedded filesystem queue (var/broker/)}"
$PY manage.py migrate --noinput -v 0
$PY manage.py collectstatic --noinput -v 0
[[ -x scripts/psp-prepare.sh ]] && scripts/psp-prepare.sh
seed_output="$($PY manage.py seed_demo)"

cat <<BANNER

  Concord is starting.
    Back office  http://127.0.0.1:${WEB_PORT}/backoffice/
    Admin        http://127.0.0.1:${WEB_PORT}/admin/
    API docs     http://127.0.0.1:${WEB_PORT}/api/v1/docs/
    Health       http://127.0.0.1:${WEB_PORT}/healthz  http://127.0.0.1:${WEB_PORT}/readyz
    Metrics      http://127.0.0.1:${WEB_PORT}/metrics   (simulate: .venv/bin/python manage.py simulate)
    Provider     ${PSP_BASE_URL}  (sandbox, key ${PSP_API_KEY})

${seed_output}

  Ctrl-C stops everything.

BANNER
exec .venv/bin/honcho -f Procfile start
