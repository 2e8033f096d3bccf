#!/usr/bin/env bash
# Faults under load (RELIABILITY.md): the production shape on loopback (PostgreSQL and Redis of
# its own, two auth-service replicas behind a balancer, two gateways and an upstream), continuous
# mixed traffic, each fault injected once with recovery in between, and per fault what failed,
# for how long, what was lost and whether any revoked token was accepted.
#
#   bash scripts/chaos/run.sh                 # the full run: release binaries, 10 s faults, a 10-minute soak at 80% of capacity
#   bash scripts/chaos/run.sh --smoke         # what CI runs: debug binaries, 3 s faults, no soak
#   CHAOS_OUT=dir CHAOS_ONLY=redis_sigkill,feed_cut bash scripts/chaos/run.sh …
#
# Fails (exit 1) on any revoked or disabled token accepted after its acknowledgement plus the
# one-second propagation bound, any refresh token lost beyond the documented window, or any 5xx
# other than 503. Needs PostgreSQL's server binaries, redis-server, openssl and, for the clock
# fault, faketime (Debian: apt-get install postgresql redis-server faketime).
set -euo pipefail
cd "$(dirname "$0")/../.."

smoke=""
[[ " $* " == *" --smoke "* ]] && smoke=1
for tool in redis-server openssl python3; do
  command -v "$tool" >/dev/null || { echo "chaos: $tool is missing (Debian: apt-get install redis-server openssl python3)"; exit 1; }
done
if ! command -v faketime >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -q faketime >/dev/null 2>&1 || true
fi

if [ -n "$smoke" ]; then
  cargo build -q -p auth-service -p gateway -p demo-upstream --bins
  bin=target/debug
  set -- --fault-seconds 3 --settle 4 --workers 4 "$@"
else
  cargo build --release -q -p auth-service -p gateway -p demo-upstream --bins
  cargo build --release -q -p testkit --example loadgen
  bin=target/release
  set -- --soak "${CHAOS_SOAK:-600}" --loadgen target/release/examples/loadgen "$@"
fi
args=()
for a in "$@"; do [ "$a" = --smoke ] || args+=("$a"); done

# matplotlib draws the soak's plot (the full run only).
python=python3
if [ -z "$smoke" ]; then
  venv=target/chaos-venv
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'matplotlib==3.9.2'
  fi
  python="$venv/bin/python"
fi

out="${CHAOS_OUT:-target/chaos/$(date +%Y%m%d-%H%M%S)}"
exec "$python" scripts/chaos/chaos.py --bin "$bin" --out "$out" ${CHAOS_ONLY:+--only "$CHAOS_ONLY"} "${args[@]}"
