#!/usr/bin/env bash
# Property-based API testing with a tool that is not ours: schemathesis (PyPI) reads the
# auth-service's /openapi.json, generates requests (examples, boundary values, random and
# stateful sequences) and fails on any 5xx, or on a response whose status, content type,
# headers or body the document does not describe. Runs against the embedded store with the
# brute-force defence off (it would otherwise answer most generated requests 429).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "schemathesis: preparing $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'schemathesis==4.32.5'
fi
cargo build -q -p auth-service
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
data=$(mktemp -d)
password="correct horse battery staple"
AUTH_LISTEN="127.0.0.1:$port" AUTH_ISSUER="$base" AUTH_DATA_DIR="$data" AUTH_THROTTLE=off RUST_LOG=warn \
  AUTH_BOOTSTRAP_ADMIN_USERNAME=root AUTH_BOOTSTRAP_ADMIN_PASSWORD="$password" \
  ./target/debug/auth-service serve > target/schemathesis-service.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.2; done
token() {
  curl -sf -X POST "$base/v1/login" -d username=root --data-urlencode "password=$password" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
# Every operation but logout, with an admin's token (logout would end the session the rest uses).
"$venv/bin/schemathesis" run "$base/openapi.json" -H "Authorization: Bearer $(token)" \
  --exclude-path /v1/logout -c "$checks" -n "${SCHEMATHESIS_EXAMPLES:-50}" --generation-deterministic \
  --no-color
"$venv/bin/schemathesis" run "$base/openapi.json" -H "Authorization: Bearer $(token)" \
  --include-path /v1/logout -c "$checks" -n "${SCHEMATHESIS_EXAMPLES:-50}" --generation-deterministic \
  --no-color
echo "schemathesis: no 5xx, every response as documented"
