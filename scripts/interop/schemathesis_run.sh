#!/usr/bin/env bash
# The schemathesis run itself, against a running dev stack (started by schemathesis.sh, which
# passes the stack's URLs, the dev admin's credentials and the feed credential).
set -euo pipefail
export API_CHECK_BASE="$DEV_AUTH_URL" API_CHECK_USERNAME="$DEV_ADMIN_USERNAME" API_CHECK_PASSWORD="$DEV_ADMIN_PASSWORD"
export API_CHECK_FEED_TOKEN="$DEV_FEED_TOKEN"
# Registered by scripts/dev.sh: Swagger UI's client `docs` and the demo page's client `demo`.
export API_CHECK_DOCS_REDIRECT_URI="$DEV_AUTH_URL/docs/oauth2-redirect.html"
export API_CHECK_DEMO_REDIRECT_URI="$DEV_GATEWAY_URL/app/"
python=$(dirname "$SCHEMATHESIS_BIN")/python
# A real ID token for the end-session endpoint's id_token_hint (a generated one is never ours).
API_CHECK_ID_TOKEN=$(cd scripts/interop && "$python" schemathesis_hooks.py id-token)
export API_CHECK_ID_TOKEN
export PYTHONPATH=scripts/interop SCHEMATHESIS_HOOKS=schemathesis_hooks
exec "$SCHEMATHESIS_BIN" --config-file scripts/interop/schemathesis.toml run "$DEV_AUTH_URL/openapi.json" \
  --checks all -n "${SCHEMATHESIS_EXAMPLES:-40}" "$@"
