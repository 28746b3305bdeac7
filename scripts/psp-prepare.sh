#!/usr/bin/env bash
# Called by scripts/run.sh before the processes start: bring the sandbox provider's
# own database (PSP_DATABASE_URL, default var/psp.sqlite3) up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
echo "Provider: ${PSP_DATABASE_URL:-embedded SQLite (var/psp.sqlite3)}"
.venv/bin/python -m sandbox_psp migrate --noinput -v 0
