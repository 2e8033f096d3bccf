#!/usr/bin/env bash
# Starts the auth-service against local PostgreSQL and Redis (installed/started if needed), shows
# it working with curl (register, log in, call /me, refresh, log out), then keeps serving until
# Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"
port="${AUTH_PORT:-8081}"
db="${AUTH_DEV_DB:-auth_dev}"
base="http://127.0.0.1:$port"
pg_base="${TEST_DATABASE_URL%/*}"

cargo build -q -p auth-service
psql "$TEST_DATABASE_URL" -qtc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
  || psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db"

export AUTH_DATABASE_URL="$pg_base/$db" AUTH_REDIS_URL="$TEST_REDIS_URL" AUTH_REDIS_PREFIX="dev:"
export AUTH_LISTEN="127.0.0.1:$port" AUTH_ISSUER="$base" RUST_LOG="${RUST_LOG:-info}"
./target/debug/auth-service > target/auth-service.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; echo; echo "stopped"' EXIT INT TERM
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "$base/readyz" >/dev/null || { echo "auth-service did not become ready; see target/auth-service.log"; exit 1; }

json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
user="demo-$RANDOM"
pw="correct horse battery staple"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "curl -X POST $base/v1/users -H 'content-type: application/json' -d '{\"username\":\"$user\",\"password\":\"…\"}'"
curl -s -X POST "$base/v1/users" -H 'content-type: application/json' -d "{\"username\":\"$user\",\"password\":\"$pw\"}"; echo
step "curl -X POST $base/v1/login -d username=$user -d password=…"
tokens=$(curl -s -X POST "$base/v1/login" -d "username=$user" --data-urlencode "password=$pw")
echo "$tokens" | cut -c1-160; echo "…"
at=$(echo "$tokens" | json '["access_token"]'); rt=$(echo "$tokens" | json '["refresh_token"]')
step "curl $base/v1/users/me -H 'authorization: Bearer <access token>'"
curl -s "$base/v1/users/me" -H "authorization: Bearer $at"; echo
step "curl -X POST $base/v1/token -d grant_type=refresh_token -d refresh_token=<refresh token>"
new=$(curl -s -X POST "$base/v1/token" -d grant_type=refresh_token -d "refresh_token=$rt")
echo "$new" | cut -c1-160; echo "…"
at=$(echo "$new" | json '["access_token"]')
step "replaying the spent refresh token (reuse detection revokes the session)"
curl -s -X POST "$base/v1/token" -d grant_type=refresh_token -d "refresh_token=$rt"; echo
step "curl $base/v1/users/me with the session's newest access token → 401"
curl -s -o /dev/null -w '%{http_code}\n' "$base/v1/users/me" -H "authorization: Bearer $at"
step "curl $base/.well-known/jwks.json"
curl -s "$base/.well-known/jwks.json" | cut -c1-120; echo "…"

printf '\nauth-service is running at %s (logs: target/auth-service.log). Ctrl-C stops it.\n' "$base"
wait $pid
