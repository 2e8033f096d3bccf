#!/usr/bin/env bash
# What scripts/browser/test.sh runs against the dev stack: the demo page's test, then the
# relying parties' (openid-client and Authlib, registered here with the CLI on the dev stack's
# embedded store, as confidential clients whose loopback redirect URIs may use any port), then
# every hosted page's.
#
#   bash scripts/browser/after.sh <base url> <dir with node_modules>
set -euo pipefail
base="$1"; dir="$2"
node scripts/browser/login.test.mjs "$base" "$dir"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export RP_NODE_PORT RP_PY_PORT RP_NODE_SECRET RP_PY_SECRET
RP_NODE_PORT=$(port); RP_PY_PORT=$(port)
cli() { AUTH_DATA_DIR=target/dev/data AUTH_ISSUER="$base" RUST_LOG=error ./target/debug/auth-service clients "$@"; }
secret() { sed -n 's/.*"client_secret": *"\([^"]*\)".*/\1/p'; }
for id in rp-node rp-python partner; do cli delete "$id" >/dev/null 2>&1 || true; done
RP_NODE_SECRET=$(cli create rp-node --first-party --scope openid --scope profile --scope email \
  --redirect-uri http://127.0.0.1/callback --post-logout-redirect-uri http://127.0.0.1/bye \
  --backchannel-logout-uri "http://127.0.0.1:$RP_NODE_PORT/bcl" | secret)
RP_PY_SECRET=$(cli create rp-python --first-party --scope openid --scope profile \
  --redirect-uri http://127.0.0.1/callback --post-logout-redirect-uri http://127.0.0.1/bye | secret)
node scripts/browser/rp.test.mjs "$base" "$dir"

# Every hosted page, as a person uses it; a third-party app for the consent page.
cli create partner --name "Partner App" --scope openid --scope profile \
  --redirect-uri http://127.0.0.1/callback >/dev/null
node scripts/browser/pages.test.mjs "$base" "$dir"

# A frontend on its own port (DEV_APP_ORIGIN, set by test.sh): signs in and calls /api.
node scripts/browser/app_origin.test.mjs "$base" "$dir" "${DEV_APP_PORT:-18083}"
