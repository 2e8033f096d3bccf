#!/usr/bin/env bash
# Starts the whole system locally with nothing but Rust installed: the auth-service on its
# embedded store (one SQLite file under target/dev/data), a demo downstream service that answers
# with the identity it received, and the gateway in front of it. Walks through it (register, log
# in, call through the gateway, refresh, reuse detection, log out → the gateway rejects the
# tokens) printing each step as a curl command that runs as printed, prints the URLs, and keeps
# serving until Ctrl-C, which stops everything.
#
#   DEV_APP_ORIGIN=http://localhost:5173   your own app's origin (a Vite dev server, …): allowed by
#                        the auth-service's CORS, registered as the public client `my-app` with
#                        redirect URI $DEV_APP_ORIGIN/ (and /callback), and given CORS on the
#                        gateway's /api (comma-separated for several)
#   DEV_STORE=postgres   use PostgreSQL + Redis instead (installed/started by scripts/services.sh)
#   DEV_EXIT=1           stop after the walkthrough (what the CI smoke test does)
#   DEV_WALK=0           skip the walkthrough
#   WALK_VIA_CURL=1      the walkthrough runs its printed curl commands (bash and curl needed)
#                        instead of sending the requests itself (what the CI smoke test does)
#   DEV_AFTER="cmd"      run cmd against the running stack (its exit status becomes ours), then stop;
#                        cmd sees DEV_AUTH_URL, DEV_PUBLIC_URL, DEV_GATEWAY_URL, DEV_ADMIN_USERNAME,
#                        DEV_ADMIN_PASSWORD and DEV_FEED_TOKEN
#   DEV_DATA_DIR=dir     keep the embedded store there (default target/dev/data; a new directory
#                        gives a fresh stack)
#   GATEWAY_LEEWAY       the gateway's clock-skew allowance in seconds (default 30)
#   AUTH_PORT, GATEWAY_PORT, GATEWAY_ADMIN_PORT, DEMO_PORT   change the ports
set -euo pipefail
cd "$(dirname "$0")/.."

auth_port="${AUTH_PORT:-8081}"; demo_port="${DEMO_PORT:-8082}"; gw_port="${GATEWAY_PORT:-8080}"; admin_port="${GATEWAY_ADMIN_PORT:-9090}"
auth="http://127.0.0.1:$auth_port"; gw="http://127.0.0.1:$gw_port"
# The issuer is the gateway's origin, as in production: apps, the hosted sign-in pages and the
# API share it. The gateway reads metadata, keys and the feed from the auth-service directly.
public="http://localhost:$gw_port"
mkdir -p target/dev

data_dir="${DEV_DATA_DIR:-target/dev/data}"
store_env=(AUTH_DATA_DIR="$data_dir")
if [ "${DEV_STORE:-embedded}" = postgres ]; then
  eval "$(bash scripts/services.sh)"
  db="${AUTH_DEV_DB:-auth_dev}"
  psql "$TEST_DATABASE_URL" -qtc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db"
  store_env=(AUTH_DATA_DIR="$data_dir" AUTH_DATABASE_URL="${TEST_DATABASE_URL%/*}/$db" AUTH_REDIS_URL="$TEST_REDIS_URL" AUTH_REDIS_PREFIX="dev:")
fi

if [ -x target/debug/auth-service ] && [ -x target/debug/gateway ] && [ -x target/debug/demo-upstream ]; then
  echo "building (only what changed)…"
else
  echo "building for the first time: about 9 minutes on two cores (cargo shows each crate as it goes)…"
fi
set +e
cargo build -p auth-service -p gateway -p demo-upstream --bins --example walkthrough 2>&1 \
  | grep --line-buffered -E '^ *(Compiling|Finished|error)' | sed -u 's/^ */  /'
built=${PIPESTATUS[0]}
set -e
[ "$built" = 0 ] || { echo "the build failed: cargo build -p auth-service -p gateway -p demo-upstream shows why"; exit 1; }
walk=./target/debug/examples/walkthrough

# The credential the gateway reads the revocation feed with: fresh for every run.
feed_token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
pids=()
stop() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo; echo "stopped"
}
trap stop EXIT
trap 'exit 130' INT TERM

# A service client for the walkthrough's client-credentials steps, registered with the CLI before
# the service starts (the CLI prints the secret, shown this once).
client_id="demo-batch-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
client_json=$(env "${store_env[@]}" AUTH_ISSUER="$public" ./target/debug/auth-service clients create "$client_id" \
  --name "the walkthrough's batch job" --scope orders:read 2>target/dev/clients.log) \
  || { echo "could not register the demo client; see target/dev/clients.log"; exit 1; }
client_secret=$(echo "$client_json" | sed -n 's/.*"client_secret": *"\([^"]*\)".*/\1/p')
# And an admin, who disables that client at the end of the walkthrough (the password never
# appears on a command line: the CLI reads it from standard input).
walk_admin="walk-admin-${client_id##*-}"
walk_admin_password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$walk_admin_password" | env "${store_env[@]}" AUTH_ISSUER="$public" \
  ./target/debug/auth-service users create "$walk_admin" --admin >/dev/null 2>>target/dev/clients.log \
  || { echo "could not create the walkthrough's admin; see target/dev/clients.log"; exit 1; }

# The demo page (gateway /app) signs in with the code flow and PKCE: a public, first-party
# client (registered again with the same settings on every start).
demo_flags=(--first-party --scope openid --scope profile --scope offline_access
  --redirect-uri "$public/app/" --redirect-uri "http://127.0.0.1:$gw_port/app/"
  --post-logout-redirect-uri "$public/app/" --post-logout-redirect-uri "http://127.0.0.1:$gw_port/app/")
env "${store_env[@]}" AUTH_ISSUER="$public" ./target/debug/auth-service clients create demo --public \
  --name "the demo page" "${demo_flags[@]}" >/dev/null 2>>target/dev/clients.log \
  || env "${store_env[@]}" AUTH_ISSUER="$public" ./target/debug/auth-service clients update demo \
    "${demo_flags[@]}" >/dev/null 2>>target/dev/clients.log \
  || { echo "could not register the demo page's client; see target/dev/clients.log"; exit 1; }

# Swagger UI's Authorize dialog: the code flow with PKCE, as the public client `docs`.
docs_flags=(--first-party --scope openid --scope profile
  --redirect-uri "$public/docs/oauth2-redirect.html" --redirect-uri "$auth/docs/oauth2-redirect.html")
env "${store_env[@]}" AUTH_ISSUER="$public" ./target/debug/auth-service clients create docs --public \
  --name "the API documentation" "${docs_flags[@]}" >/dev/null 2>>target/dev/clients.log \
  || env "${store_env[@]}" AUTH_ISSUER="$public" ./target/debug/auth-service clients update docs \
    "${docs_flags[@]}" >/dev/null 2>>target/dev/clients.log \
  || { echo "could not register Swagger UI's client; see target/dev/clients.log"; exit 1; }

# Your own app (DEV_APP_ORIGIN): a public client with its redirect URIs, CORS at the
# auth-service and on the gateway's /api.
app_origins=()
IFS=',' read -r -a app_origins <<< "${DEV_APP_ORIGIN:-}"
if [ "${#app_origins[@]}" -gt 0 ]; then
  app_flags=(--first-party --scope openid --scope profile --scope email --scope offline_access)
  for o in "${app_origins[@]}"; do
    o="${o%/}"
    app_flags+=(--redirect-uri "$o/" --redirect-uri "$o/callback" --post-logout-redirect-uri "$o/")
  done
  env "${store_env[@]}" AUTH_ISSUER="$public" ./target/debug/auth-service clients create my-app --public \
    --name "your app" "${app_flags[@]}" >/dev/null 2>>target/dev/clients.log \
    || env "${store_env[@]}" AUTH_ISSUER="$public" ./target/debug/auth-service clients update my-app \
      "${app_flags[@]}" >/dev/null 2>>target/dev/clients.log \
    || { echo "could not register your app's client (DEV_APP_ORIGIN=$DEV_APP_ORIGIN); see target/dev/clients.log"; exit 1; }
fi
cors_origins="http://localhost:$gw_port,http://127.0.0.1:$gw_port${DEV_APP_ORIGIN:+,$DEV_APP_ORIGIN}${AUTH_CORS_ORIGINS:+,$AUTH_CORS_ORIGINS}"

# An admin for development (this stack only: production never prints a password).
dev_admin_password="dev admin password $(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$dev_admin_password" | env "${store_env[@]}" AUTH_ISSUER="$public" \
  ./target/debug/auth-service users create dev-admin --admin >/dev/null 2>>target/dev/clients.log \
  || { dev_admin_password=$(sed -n 's/^password: //p' target/dev/admin.txt 2>/dev/null); kept=1; }
[ -n "$dev_admin_password" ] || dev_admin_password="(kept from an earlier run)"
[ -n "${kept:-}" ] || printf 'username: dev-admin\npassword: %s\n' "$dev_admin_password" > target/dev/admin.txt

# The demo page (gateway /app) calls the auth-service through the gateway: that origin may use
# the refresh-token cookie.
env "${store_env[@]}" AUTH_LISTEN="127.0.0.1:$auth_port" AUTH_ISSUER="$public" AUTH_FEED_TOKEN="$feed_token" \
  AUTH_CORS_ORIGINS="$cors_origins" AUTH_TRUSTED_PROXIES=127.0.0.1 \
  AUTH_ROLE_SCOPES='{"user":["profile"],"admin":["users:write"]}' \
  ./target/debug/auth-service > target/dev/auth-service.log 2>&1 &
pids+=($!)
DEMO_LISTEN="127.0.0.1:$demo_port" ./target/debug/demo-upstream > target/dev/demo.log 2>&1 &
pids+=($!)
$walk wait "$auth/readyz" || { echo "the auth-service did not become ready; see target/dev/auth-service.log"; exit 1; }
cat > target/dev/gateway.toml <<TOML
issuer = "$public"
audiences = ["api"]
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:$admin_port"
leeway = ${GATEWAY_LEEWAY:-30}
discovery_url = "$auth/.well-known/openid-configuration"
jwks_url = "$auth/.well-known/jwks.json"
feed_url = "$auth/v1/revocations"

# The auth-service's endpoints, its hosted sign-in pages and the demo page on the gateway's
# origin: the issuer's.
[[routes]]
prefix = "/v1"
upstream = "$auth"
auth = "public"
forward_token = true

[[routes]]
prefix = "/.well-known"
upstream = "$auth"
auth = "public"

[[routes]]
prefix = "/docs"
upstream = "$auth"
auth = "public"

[[routes]]
prefix = "/openapi.json"
upstream = "$auth"
auth = "public"

[[routes]]
prefix = "/app"
upstream = "http://127.0.0.1:$demo_port"
auth = "public"

[[routes]]
prefix = "/public"
upstream = "http://127.0.0.1:$demo_port"
auth = "public"

[[routes]]
prefix = "/api"
upstream = "http://127.0.0.1:$demo_port"
$(if [ -n "${DEV_APP_ORIGIN:-}" ]; then
  printf '[routes.cors]\nallowed_origins = [%s]\n' "$(printf '"%s",' "${app_origins[@]%/}" | sed 's/,$//')"
fi)

[[routes]]
prefix = "/admin"
upstream = "http://127.0.0.1:$demo_port"
roles = ["admin"]

# Only services' own tokens (client credentials).
[[routes]]
prefix = "/internal"
upstream = "http://127.0.0.1:$demo_port"
principal = "client"
TOML
GATEWAY_CONFIG=target/dev/gateway.toml GATEWAY_FEED_TOKEN="$feed_token" ./target/debug/gateway > target/dev/gateway.log 2>&1 &
pids+=($!)
$walk wait "http://127.0.0.1:$admin_port/readyz" || { echo "the gateway did not become ready; see target/dev/gateway.log"; exit 1; }

if [ "${DEV_WALK:-1}" != 0 ]; then
  WALK_ADMIN="$walk_admin" WALK_ADMIN_PASSWORD="$walk_admin_password" \
    $walk run "$auth" "$gw" "$client_id" "$client_secret"
fi
if [ -n "${DEV_AFTER:-}" ]; then
  status=0
  DEV_AUTH_URL="$auth" DEV_PUBLIC_URL="$public" DEV_GATEWAY_URL="$gw" DEV_ADMIN_USERNAME=dev-admin \
    DEV_ADMIN_PASSWORD="$dev_admin_password" DEV_FEED_TOKEN="$feed_token" bash -c "$DEV_AFTER" || status=$?
  exit "$status"
fi

cat <<INFO

Running (logs in target/dev/):
  demo page      $public/app   (sign in from a browser: the code flow with PKCE, through the gateway)
  account page   $public/v1/account   (the hosted sign-in pages)
  discovery      $public/.well-known/openid-configuration
  API docs       $public/docs/   (Swagger UI; OpenAPI: $public/openapi.json)
  gateway        $gw   (admin listener: http://127.0.0.1:$admin_port/healthz, /readyz, /metrics)
  auth-service   $auth   (store: ${DEV_STORE:-embedded}; issuer: $public)
  demo upstream  http://127.0.0.1:$demo_port
  dev admin      dev-admin / $dev_admin_password   (development only)
$(if [ -n "${DEV_APP_ORIGIN:-}" ]; then echo "  your app       $DEV_APP_ORIGIN: client_id my-app (public), redirect URI $DEV_APP_ORIGIN/ or /callback, CORS on $public/api"; fi)
Ctrl-C stops everything.
INFO
[ "${DEV_EXIT:-0}" = 1 ] && exit 0
wait "${pids[0]}"
