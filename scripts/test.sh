#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests against real PostgreSQL and Redis (each test
# gets its own database and Redis key prefix), the storage conformance suite on both backends,
# the interop check with PyJWT, schemathesis, a short run of each fuzz target, a short run of the
# faults under load, and the run command (scripts/dev.sh) started, walked through and stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"

# The interop tests use libraries that are not ours: PyJWT verifies our tokens, and the
# Prometheus client's parser reads our /metrics, openapi-spec-validator checks /openapi.json,
# and Authlib (an OAuth2 client) gets tokens with client credentials and calls through the gateway.
venv=target/interop-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import jwt, cryptography, prometheus_client, openapi_spec_validator, authlib, requests' 2>/dev/null; then
  echo "test: preparing $venv (PyJWT, the Prometheus client's text parser, an OpenAPI validator, Authlib)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'pyjwt[crypto]==2.10.1' 'prometheus-client==0.21.1' 'openapi-spec-validator==0.7.1' 'authlib==1.3.2' 'requests==2.32.3'
fi
export INTEROP_PYTHON="$PWD/$venv/bin/python"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  cargo test --workspace --doc -q
else
  cargo test --workspace --no-fail-fast "$@"
fi
# shared's downstream-service library (features jwks-client, actix) with its own tests.
cargo test -p shared --all-features -q

# schemathesis --checks all against the auth-service's OpenAPI document on a fresh dev stack.
bash scripts/interop/schemathesis.sh

# The fuzz targets, briefly (SECURITY.md; longer runs: scripts/fuzz.sh 600). FUZZ_SECONDS=0 skips.
if [ "${FUZZ_SECONDS:-15}" != 0 ]; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
fi

# The deployment files, validated offline; the compose topology run natively and walked through.
bash scripts/deploy/validate.sh
bash scripts/deploy/compose_native.sh

# Faults under load, each once and briefly (RELIABILITY.md; the full run with its soak:
# scripts/chaos/run.sh). Fails on any revoked token accepted, any acknowledged write lost beyond
# the documented window, or any 5xx other than 503.
bash scripts/chaos/run.sh --smoke

# The browser login flow in Chromium (playwright-core) against the dev stack.
bash scripts/browser/test.sh

# The README's run command, end to end: start, walk through, Ctrl-C.
bash scripts/dev_smoke.sh
