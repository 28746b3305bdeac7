#!/usr/bin/env bash
# Start PostgreSQL and Redis for the test suite when installed and not running.
set -euo pipefail

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == "PONG" ]]; }

if ! pg_up; then
    if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
        echo "Starting PostgreSQL..."
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    else
        echo "PostgreSQL is not running on 127.0.0.1:5432 and is not installed here." >&2
        echo "Install it (apt-get install postgresql) or set DATABASE_URL to a reachable server." >&2
        exit 1
    fi
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    pg_up || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
fi

if ! redis_up; then
    if command -v redis-server >/dev/null; then
        echo "Starting Redis..."
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    else
        echo "Redis is not running on 127.0.0.1:6379 and is not installed here." >&2
        echo "Install it (apt-get install redis-server) or set CELERY_BROKER_URL to a reachable broker." >&2
        exit 1
    fi
    for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
    redis_up || { echo "Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }
fi
echo "PostgreSQL and Redis are up."
