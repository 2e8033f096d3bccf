#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1 (ports 5432 and 6379): starts them if they
# are installed but stopped, installs them from Debian's packages if absent (needs root).
# Prints the URLs to use as `export` lines on stdout; progress goes to stderr.
set -euo pipefail

PG_URL="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
log() { echo "services: $*" >&2; }

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "please install $* (Debian: apt-get install $*) or point TEST_DATABASE_URL / TEST_REDIS_URL at running servers"
    exit 1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

if ! pg_up; then
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  if command -v pg_ctlcluster >/dev/null; then
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { log "PostgreSQL did not come up"; exit 1; }
  # A fresh Debian cluster wants a password over TCP: give the superuser the one our URL uses.
  if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
    runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'" >&2 || true
  fi
fi

if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis"
  mkdir -p /tmp/redis-dev
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --maxmemory-policy noeviction --dir /tmp/redis-dev --logfile /tmp/redis-dev/redis.log >&2
  for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
  redis_up || { log "Redis did not come up"; exit 1; }
fi

echo "export TEST_DATABASE_URL='$PG_URL'"
echo "export TEST_REDIS_URL='$REDIS_URL'"
