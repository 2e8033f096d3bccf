#!/usr/bin/env bash
# Runs docker-compose.yml's topology as native processes (two auth-service replicas on one
# PostgreSQL and one Redis, the gateway, the demo service), as the compose file and the
# Dockerfile define them, and walks the compose walkthrough of docs/deployment.md against it
# (deploy/compose/walkthrough.sh). No container engine needed; see compose_native.py for what
# stands in for it. Needs PostgreSQL's server binaries and redis-server (scripts/services.sh
# installs both).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(bash scripts/deploy/tools.sh)"
cargo build -q -p auth-service -p gateway -p demo-upstream --bins
work=$(mktemp -d /tmp/compose-native.XXXXXX)
if "$COMPOSE_PYTHON" scripts/deploy/compose_native.py . "$work"; then
  rm -rf "$work"
else
  echo "compose-native: FAILED; the services' logs are in $work" >&2
  exit 1
fi
