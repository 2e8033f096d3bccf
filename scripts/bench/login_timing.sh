#!/usr/bin/env bash
# Login timing as an attacker measures it (not run in CI): does a failed login at an existing
# account answer in another time than one at an unknown account? The production shape
# (PostgreSQL + Redis, a release build), throttling off so that every attempt is answered,
# ROUNDS (default 200) rounds of interleaved wrong-password logins; the statistics come from
# scripts/bench/login_timing.py. SECURITY.md quotes the result. AUTH_BIN=<path> measures another
# build of the auth-service (an older commit's, for a before/after comparison).
set -euo pipefail
cd "$(dirname "$0")/../.."

SVC_CPUS="${SVC_CPUS:-0}"; LOAD_CPUS="${LOAD_CPUS:-1}"; ROUNDS="${ROUNDS:-200}"
for tool in taskset curl python3 psql; do
  command -v "$tool" >/dev/null || { echo "login_timing: $tool is missing"; exit 1; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

eval "$(bash scripts/services.sh)"
if [ -z "${AUTH_BIN:-}" ]; then
  cargo build --release -q -p auth-service --bin auth-service
  AUTH_BIN=./target/release/auth-service
fi

work=$(mktemp -d /tmp/logintiming.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS logintiming WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port); base="http://127.0.0.1:$port"
password="correct horse battery staple"
psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS logintiming WITH (FORCE)" -c "CREATE DATABASE logintiming" >/dev/null
AUTH_DATABASE_URL="${TEST_DATABASE_URL%/*}/logintiming" AUTH_REDIS_URL="$TEST_REDIS_URL" \
AUTH_REDIS_PREFIX="logintiming-$$:" AUTH_LISTEN="127.0.0.1:$port" AUTH_ISSUER="$base" \
AUTH_THROTTLE=off RUST_LOG=warn AUTH_KEY_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
AUTH_BOOTSTRAP_ADMIN_USERNAME=root AUTH_BOOTSTRAP_ADMIN_PASSWORD="$password" \
  taskset -c "$SVC_CPUS" "$AUTH_BIN" > "$work/auth.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "$base/readyz" >/dev/null || { cat "$work/auth.log"; exit 1; }

for u in existing disabled; do
  curl -sf -X POST "$base/v1/users" -H 'content-type: application/json' \
    -d "{\"username\":\"$u\",\"password\":\"$password\"}" > "$work/$u.json"
done
admin=$(curl -sf -X POST "$base/v1/login" -d username=root --data-urlencode "password=$password" \
  | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
id=$(python3 -c 'import sys,json; print(json.load(open(sys.argv[1]))["id"])' "$work/disabled.json")
curl -sf -X PATCH "$base/v1/admin/users/$id" -H "authorization: Bearer $admin" \
  -H 'content-type: application/json' -d '{"disabled":true}' >/dev/null

echo "login_timing: auth-service (release, PostgreSQL + Redis) on CPU $SVC_CPUS, the client on CPU $LOAD_CPUS" >&2
taskset -c "$LOAD_CPUS" python3 scripts/bench/login_timing.py "$base" existing disabled "$password" "$ROUNDS"
