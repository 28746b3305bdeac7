#!/usr/bin/env bash
# What the machine needs, from Debian's packages; `make test` and `.ci/run` start here.
#
#   scripts/bootstrap.sh               everything the suite needs: make, python3-venv,
#                                      chromium, postgresql, redis-server installed, and
#                                      PostgreSQL and Redis answering where DATABASE_URL /
#                                      CELERY_BROKER_URL point (default 127.0.0.1:5432 / :6379)
#   scripts/bootstrap.sh install PKG…  only install these packages when missing
#                                      (`make venv` and `make run` ask for what they need)
#
# Installs with apt-get as root (or through sudo without a password); otherwise it
# says what to install and fails. Starting a local server it is told about: Debian's
# PostgreSQL cluster (pg_ctlcluster) and a redis-server daemon, as a fresh CI machine
# needs. Servers that already answer are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

SUITE_PACKAGES=(make python3-venv chromium postgresql redis-server)

present() {
    case "$1" in
        make) command -v make >/dev/null ;;
        python3-venv) python3 -c 'import ensurepip, venv' 2>/dev/null ;;
        chromium) [[ -x /usr/bin/chromium ]] ;;
        postgresql) compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null ;;
        redis-server) command -v redis-server >/dev/null ;;
        *) dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' ;;
    esac
}

install() {
    local missing=() pkg
    for pkg in "$@"; do present "$pkg" || missing+=("$pkg"); done
    ((${#missing[@]})) || return 0
    local sudo=()
    if [[ $EUID -ne 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo)
        else
            echo "Missing Debian packages: ${missing[*]}" >&2
            echo "Install them as root: apt-get install -y ${missing[*]}" >&2
            return 1
        fi
    fi
    echo "Installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    [[ " ${missing[*]} " == *" postgresql "* ]] && INSTALLED_POSTGRES=1
    return 0
}
INSTALLED_POSTGRES=0

tcp_up() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_up() {
    for _ in $(seq 1 60); do tcp_up "$1" "$2" && return 0; sleep 0.5; done
    echo "$3 did not come up on $1:$2" >&2
    return 1
}

# Sets host and port from a URL such as postgres://user@127.0.0.1:5432/db ($2: the
# default port). Returns 0 when the server answers, 1 when it is local and does not
# (the caller starts it), and fails with a message when it is remote and does not.
locate() {
    local rest="${1#*://}"
    rest="${rest%%/*}"
    rest="${rest##*@}"
    host="${rest%%:*}"
    [[ "$rest" == *:* ]] && port="${rest##*:}" || port="$2"
    tcp_up "$host" "$port" && return 0
    if [[ "$host" == 127.0.0.1 || "$host" == localhost || -z "$host" ]]; then
        return 1
    fi
    echo "$3 at $host:$port ($4) does not answer." >&2
    exit 1
}

start_postgres() {
    local host port cluster
    locate "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/concord}" 5432 PostgreSQL DATABASE_URL && return 0
    cluster="$(pg_lsclusters -h 2>/dev/null | awk -v port="$port" '$3 == port {print $1 " " $2; exit}')"
    if [[ -z "$cluster" ]]; then
        echo "No Debian PostgreSQL cluster on port $port to start (pg_lsclusters)." >&2
        echo "Create one (pg_createcluster) or set DATABASE_URL to a running server." >&2
        return 1
    fi
    echo "Starting PostgreSQL $cluster on port $port..."
    # shellcheck disable=SC2086  # "version name"
    pg_ctlcluster --skip-systemctl-redirect $cluster start
    wait_up 127.0.0.1 "$port" PostgreSQL
}

# The suite logs in over TCP as the URL's user without a password (trust). A cluster that
# Debian's package has just created asks loopback logins for one (scram-sha-256): when
# this very run installed PostgreSQL, let the superuser in from loopback; a server that
# was here before is the owner's to configure, so then only say what is wrong.
check_postgres_login() {
    local url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/concord}" host port user cluster hba
    locate "$url" 5432 PostgreSQL DATABASE_URL || return 1
    user="${url#*://}"
    [[ "$user" == *@* ]] && user="${user%%@*}" || user=postgres
    [[ "$user" == *:* ]] && return 0 # a password in the URL: nothing to check here
    pg_login() { PGCONNECT_TIMEOUT=5 psql -w -h "$host" -p "$port" -U "$user" -d postgres -tAc 'select 1' >/dev/null 2>&1; }
    pg_login && return 0
    cluster="$(pg_lsclusters -h 2>/dev/null | awk -v port="$port" '$3 == port {print $1 "/" $2; exit}')"
    if [[ "$INSTALLED_POSTGRES" == 1 && -n "$cluster" && "$host" == 127.0.0.1 && "$user" == postgres ]]; then
        hba="/etc/postgresql/$cluster/pg_hba.conf"
        echo "PostgreSQL was just installed: letting the user postgres in from loopback ($hba)."
        sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect ${cluster/\// } reload
        pg_login && return 0
    fi
    echo "PostgreSQL at $host:$port does not let '$user' in without a password." >&2
    echo "Put the password in DATABASE_URL (postgres://$user:PASSWORD@$host:$port/concord)" >&2
    echo "or allow loopback logins in pg_hba.conf (host all $user 127.0.0.1/32 trust)." >&2
    return 1
}

start_redis() {
    local host port
    locate "${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}" 6379 Redis CELERY_BROKER_URL && return 0
    echo "Starting Redis on port $port..."
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --logfile "${TMPDIR:-/tmp}/concord-redis-$port.log"
    wait_up 127.0.0.1 "$port" Redis
}

if [[ "${1:-}" == install ]]; then
    shift
    install "$@"
    exit
fi
install "${SUITE_PACKAGES[@]}"
start_postgres
check_postgres_login
start_redis
echo "Bootstrap: packages present; PostgreSQL and Redis answering."
