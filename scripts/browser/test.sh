#!/usr/bin/env bash
# Browser sign-in, in a real browser: Debian's Chromium driven by playwright-core (npm), against
# the dev stack (scripts/dev.sh) with 5-second access tokens and no leeway, so the silent refresh
# happens during the test: the demo page (the code flow by hand), then openid-client (npm) and
# Authlib (PyPI) as relying parties. Screenshots go to target/browser/.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "browser: installing Debian's chromium" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "browser: needs Chromium at /usr/bin/chromium (sudo apt-get install chromium) or CHROMIUM=path" >&2
    exit 1
  fi
fi
dir=target/browser
mkdir -p "$dir"
if [ ! -f "$dir/node_modules/playwright-core/package.json" ] || [ ! -f "$dir/node_modules/openid-client/package.json" ]; then
  echo "browser: installing playwright-core and openid-client into $dir" >&2
  (cd "$dir" && npm install --silent --no-audit --no-fund --no-save playwright-core@1.64.1 openid-client@6.9.1 >/dev/null 2>&1)
fi
# Authlib for the Python relying party: the interop venv scripts/test.sh prepares.
venv=target/interop-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import authlib, requests' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'authlib==1.3.2' 'requests==2.32.3'
fi
export INTEROP_PYTHON="$PWD/$venv/bin/python"
rm -f "$dir"/*.png
export AUTH_ACCESS_TOKEN_TTL=5 AUTH_LEEWAY=0 GATEWAY_LEEWAY=0
export DEV_APP_PORT=18083 DEV_APP_ORIGIN=http://localhost:18083
AUTH_PORT=18081 GATEWAY_PORT=18080 GATEWAY_ADMIN_PORT=19090 DEMO_PORT=18082 \
  DEV_WALK=0 DEV_AFTER="bash scripts/browser/after.sh http://localhost:18080 $dir" \
  bash scripts/dev.sh
