#!/usr/bin/env bash
# The README's run command end to end, as CI runs it: start scripts/dev.sh (embedded store) on
# free ports, let it walk through, press Ctrl-C (SIGINT to its process group, as a terminal
# does), and check that everything it started has stopped. The walkthrough runs in its check
# mode (WALK_VIA_CURL=1): each `curl` command it prints is run as printed, with bash and curl,
# after the variable assignments printed before it, so the printed commands are known to work.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "dev smoke: curl is needed (the walkthrough runs its printed curl commands)"; exit 1; }
export WALK_VIA_CURL=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export AUTH_PORT=$(free_port) GATEWAY_PORT=$(free_port) GATEWAY_ADMIN_PORT=$(free_port) DEMO_PORT=$(free_port)
rm -rf target/dev/data
log=target/dev-smoke.log
set -m   # job control: dev.sh gets its own process group, like a terminal's foreground job
bash scripts/dev.sh > "$log" 2>&1 &
pid=$!
set +m
fail() { echo "dev smoke: $1"; echo "--- $log"; cat "$log"; kill -TERM -"$pid" 2>/dev/null || true; exit 1; }
for _ in $(seq 1 1200); do
  grep -q "Ctrl-C stops everything" "$log" && break
  kill -0 "$pid" 2>/dev/null || fail "scripts/dev.sh exited before the walkthrough ended"
  sleep 0.5
done
grep -q "Ctrl-C stops everything" "$log" || fail "no walkthrough within 10 minutes"
grep -q "WALK_VIA_CURL=1: the walkthrough runs them" "$log" || fail "the walkthrough did not run its printed commands"
grep -q "the gateway rejected the logged-out token" "$log" || fail "the walkthrough did not reach the logout step"
grep -q "v1/introspect" "$log" || fail "the walkthrough did not reach the service-client steps"
grep -q "rejected the disabled client's token" "$log" || fail "the walkthrough did not disable its client"
kill -INT -"$pid"
status=0; wait "$pid" || status=$?
[ "$status" = 130 ] || fail "scripts/dev.sh exited with $status after Ctrl-C (expected 130)"
grep -q "^stopped" "$log" || fail "no 'stopped' line"
for p in "$AUTH_PORT" "$GATEWAY_PORT" "$GATEWAY_ADMIN_PORT" "$DEMO_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then fail "port $p still answers after Ctrl-C"; fi
done
echo "dev smoke: started, walked through, stopped cleanly on Ctrl-C ($(grep -c '^\$ curl ' "$log") printed commands run as printed)"
