#!/usr/bin/env bash
# Property-based API testing with a tool that is not ours, in one command: starts a fresh dev
# stack (scripts/dev.sh, a new embedded store, free ports, the brute-force defence off since it
# would answer most generated requests 429), and runs `schemathesis run --checks all` against the
# auth-service's /openapi.json with scripts/interop/schemathesis.toml and the auth hook
# scripts/interop/schemathesis_hooks.py (an admin's token, obtained again whenever a generated
# case revoked it). Every check: no 5xx; status, content type, headers and body as documented;
# data the document forbids is refused and data it allows is accepted; missing or wrong
# credentials are refused; undeclared methods get 405 with Allow; deleted resources stay gone.
#
#   SCHEMATHESIS_EXAMPLES=n   examples per operation and phase (default 40)
#   extra arguments go to `schemathesis run` (for example --include-path /v1/token)
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q '4.32.5'; then
  echo "schemathesis: preparing $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'schemathesis==4.32.5'
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
# Runs inside the stack (DEV_AFTER), with its URLs and the dev admin's credentials.
export SCHEMATHESIS_BIN="$PWD/$venv/bin/schemathesis"
DEV_DATA_DIR="$data" DEV_WALK=0 AUTH_THROTTLE=off \
  AUTH_PORT=$(free_port) GATEWAY_PORT=$(free_port) GATEWAY_ADMIN_PORT=$(free_port) DEMO_PORT=$(free_port) \
  DEV_AFTER="bash scripts/interop/schemathesis_run.sh${*:+$(printf " %q" "$@")}" \
  bash scripts/dev.sh
