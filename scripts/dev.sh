#!/usr/bin/env bash
# Starts the stack locally: the auth-service (on PostgreSQL and Redis, installed/started if
# needed), a demo downstream service, and the gateway in front of it. Shows it working with curl
# (register, log in, call through the gateway, refresh, reuse detection and log out → the gateway
# rejects the tokens through its revocation feed),
# then keeps serving until Ctrl-C, which stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"
auth_port="${AUTH_PORT:-8081}"; demo_port="${DEMO_PORT:-8082}"; gw_port="${GATEWAY_PORT:-8080}"; admin_port="${GATEWAY_ADMIN_PORT:-9090}"
db="${AUTH_DEV_DB:-auth_dev}"
auth="http://127.0.0.1:$auth_port"; gw="http://127.0.0.1:$gw_port"
pg_base="${TEST_DATABASE_URL%/*}"

cargo build -q -p auth-service -p gateway --bins --example demo_upstream
psql "$TEST_DATABASE_URL" -qtc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
  || psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db"

mkdir -p target/dev
# The credential the gateway reads the revocation feed with: fresh for every run.
feed_token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; echo; echo "stopped"; }
trap stop EXIT INT TERM

AUTH_DATABASE_URL="$pg_base/$db" AUTH_REDIS_URL="$TEST_REDIS_URL" AUTH_REDIS_PREFIX="dev:" \
AUTH_LISTEN="127.0.0.1:$auth_port" AUTH_ISSUER="$auth" AUTH_FEED_TOKEN="$feed_token" \
AUTH_ROLE_SCOPES='{"user":["profile"],"admin":["users:write"]}' \
  ./target/debug/auth-service > target/dev/auth-service.log 2>&1 &
pids+=($!)
DEMO_LISTEN="127.0.0.1:$demo_port" ./target/debug/examples/demo_upstream > target/dev/demo.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "$auth/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "$auth/readyz" >/dev/null || { echo "auth-service did not become ready; see target/dev/auth-service.log"; exit 1; }
cat > target/dev/gateway.toml <<TOML
issuer = "$auth"
audiences = ["api"]
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:$admin_port"

[[routes]]
prefix = "/public"
upstream = "http://127.0.0.1:$demo_port"
auth = "public"

[[routes]]
prefix = "/api"
upstream = "http://127.0.0.1:$demo_port"

[[routes]]
prefix = "/admin"
upstream = "http://127.0.0.1:$demo_port"
roles = ["admin"]
TOML
GATEWAY_CONFIG=target/dev/gateway.toml GATEWAY_FEED_TOKEN="$feed_token" ./target/debug/gateway > target/dev/gateway.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null && break; sleep 0.2; done

json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
user="demo-$RANDOM"; pw="correct horse battery staple"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "curl -X POST $auth/v1/users -d '{\"username\":\"$user\",\"password\":\"…\"}'"
curl -s -X POST "$auth/v1/users" -H 'content-type: application/json' -d "{\"username\":\"$user\",\"password\":\"$pw\"}"; echo
step "curl -X POST $auth/v1/login -d username=$user -d password=…"
tokens=$(curl -s -X POST "$auth/v1/login" -d "username=$user" --data-urlencode "password=$pw")
echo "$tokens" | cut -c1-120; echo "…"
at=$(echo "$tokens" | json '["access_token"]'); rt=$(echo "$tokens" | json '["refresh_token"]')
step "curl $gw/api/orders   (no token → 401 from the gateway)"
curl -s "$gw/api/orders"; echo
step "curl $gw/api/orders -H 'authorization: Bearer <access token>' -H 'x-user-id: admin'   (verified locally; the spoofed header is dropped)"
curl -s "$gw/api/orders" -H "authorization: Bearer $at" -H 'x-user-id: admin'; echo
step "curl $gw/admin/panel with a user token → 403"
curl -s "$gw/admin/panel" -H "authorization: Bearer $at"; echo
step "curl -X POST $auth/v1/token -d grant_type=refresh_token -d refresh_token=<refresh token>"
new=$(curl -s -X POST "$auth/v1/token" -d grant_type=refresh_token -d "refresh_token=$rt")
echo "$new" | cut -c1-120; echo "…"
at=$(echo "$new" | json '["access_token"]')
step "replaying the spent refresh token (reuse detection revokes the session)"
curl -s -X POST "$auth/v1/token" -d grant_type=refresh_token -d "refresh_token=$rt"; echo
sleep 0.2
step "curl $gw/api/orders with the session's newest access token → 401 (the revocation reached the gateway)"
curl -s "$gw/api/orders" -H "authorization: Bearer $at"; echo
step "log in again, call through the gateway, then curl -X POST $auth/v1/logout"
at=$(curl -s -X POST "$auth/v1/login" -d "username=$user" --data-urlencode "password=$pw" | json '["access_token"]')
curl -s -o /dev/null -w 'before logout: %{http_code}\n' "$gw/api/orders" -H "authorization: Bearer $at"
curl -s -o /dev/null -w 'logout: %{http_code}\n' -X POST "$auth/v1/logout" -H "authorization: Bearer $at"
sleep 0.2
curl -s -w '\nafter logout: %{http_code}\n' "$gw/api/orders" -H "authorization: Bearer $at"

cat <<INFO

Running (logs in target/dev/):
  auth-service  $auth          (JWKS: $auth/.well-known/jwks.json)
  gateway       $gw          (admin: http://127.0.0.1:$admin_port/readyz, /metrics)
  demo upstream http://127.0.0.1:$demo_port
Ctrl-C stops everything.
INFO
wait "${pids[0]}"
