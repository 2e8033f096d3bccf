#!/usr/bin/env bash
# Revocation benchmark (not run in CI). Two parts, one run:
#  1. propagation: 1,000 logouts, each timed from the moment the logout call returns until both
#     gateways reject the session's access token (scripts/bench/revocation_latency.py);
#  2. cost of a big list: a gateway holding 100,000 live revocation entries against one holding
#     none, same token shape, same upstream, rounds interleaved (wrk);
#  3. cost of the acknowledgement: the logout call's duration with the default store-outage grace
#     (each logout waits until every feed reader serving a gateway has read it) against
#     AUTH_FEED_OUTAGE_GRACE=0 (no reader registers: the check finds nothing to wait for), same
#     machine, same run.
# Services run on SVC_CPUS, the load generators and upstream on LOAD_CPUS. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

SVC_CPUS="${SVC_CPUS:-0}"; LOAD_CPUS="${LOAD_CPUS:-1}"
DURATION="${DURATION:-10}"; CONNS="${CONNS:-64}"; ROUNDS="${ROUNDS:-3}"
REVOCATIONS="${REVOCATIONS:-1000}"; ENTRIES="${ENTRIES:-100000}"
for tool in wrk taskset nginx curl python3 redis-cli; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (Debian: apt-get install wrk nginx-light curl redis-tools)"; exit 1; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

eval "$(bash scripts/services.sh)"
cargo build --release -q -p auth-service -p gateway --bins

work=$(mktemp -d /tmp/revbench.XXXXXX); chmod 755 "$work"
feed=revbench-feed-token-0123456789abcdef
cleanup() {
  # Every service writes $work/NAME.pid (the functions below run in subshells).
  for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  for db in revbench_a revbench_b revbench_c; do psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  for p in revbench_a: revbench_b: revbench_c:; do
    redis-cli -u "$TEST_REDIS_URL" --scan --pattern "$p*" | xargs -r -n 1000 redis-cli -u "$TEST_REDIS_URL" del >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Upstream: nginx answering "ok", on the load core.
up_port=$(free_port)
cat > "$work/upstream.conf" <<NGINX
worker_processes 1; daemon on; pid $work/upstream.pid; error_log $work/nginx-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work; uwsgi_temp_path $work; scgi_temp_path $work;
  server { listen 127.0.0.1:$up_port; location / { return 200 'ok'; } } }
NGINX
taskset -c "$LOAD_CPUS" nginx -c "$work/upstream.conf" -e "$work/nginx-error.log"

start_auth() { # $1 = name (database and Redis prefix), $2 = AUTH_FEED_OUTAGE_GRACE → prints the URL
  local port; port=$(free_port)
  psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null 2>&1
  redis-cli -u "$TEST_REDIS_URL" --scan --pattern "$1:*" | xargs -r -n 1000 redis-cli -u "$TEST_REDIS_URL" del >/dev/null
  AUTH_DATABASE_URL="${TEST_DATABASE_URL%/*}/$1" AUTH_REDIS_URL="$TEST_REDIS_URL" AUTH_REDIS_PREFIX="$1:" \
  AUTH_LISTEN="127.0.0.1:$port" AUTH_ISSUER="http://127.0.0.1:$port" AUTH_ACCESS_TOKEN_TTL=3600 AUTH_THROTTLE=off \
  AUTH_FEED_OUTAGE_GRACE="${2:-30}" AUTH_FEED_TOKEN="$feed" AUTH_KEY_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" RUST_LOG=warn taskset -c "$SVC_CPUS" ./target/release/auth-service > "$work/$1.log" 2>&1 &
  echo $! > "$work/$1.pid"
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  echo "http://127.0.0.1:$port"
}
start_gateway() { # $1 = name, $2 = issuer → prints "port admin_port"
  local port admin; port=$(free_port); admin=$(free_port)
  cat > "$work/$1.toml" <<TOML
issuer = "$2"
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
workers = 1
[[routes]]
prefix = "/"
upstream = "http://127.0.0.1:$up_port"
TOML
  GATEWAY_CONFIG="$work/$1.toml" GATEWAY_FEED_TOKEN="$feed" RUST_LOG=warn taskset -c "$SVC_CPUS" ./target/release/gateway > "$work/$1.log" 2>&1 &
  echo $! > "$work/$1.pid"
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "bench: gateway $1 not ready" >&2; exit 1; }
  echo "$port $admin"
}
token_from() { # $1 = auth URL
  curl -sf -X POST "$1/v1/users" -H 'content-type: application/json' -d '{"username":"bench","password":"correct horse battery staple"}' >/dev/null
  curl -sf -X POST "$1/v1/login" -d username=bench --data-urlencode "password=correct horse battery staple" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])'
}

auth_a=$(start_auth revbench_a)
auth_b=$(start_auth revbench_b)
auth_c=$(start_auth revbench_c 0)
# B's list: ENTRIES live entries (a third each of jti, sid and sub), written as the service does.
exp=$(( $(date +%s) + 3600 ))
redis-cli -u "$TEST_REDIS_URL" EVAL "
local p, n, exp = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local kinds = {'jti', 'sid', 'sub'}
for i = 1, n do
  local typ = kinds[(i % 3) + 1]
  local v = string.format('bench-%08d', i)
  local key = p .. 'rev:' .. typ .. ':' .. v
  if typ == 'sub' then redis.call('HSET', key, 'exp', exp, 'iat_before', exp - 3600)
  else redis.call('HSET', key, 'exp', exp) end
  redis.call('EXPIREAT', key, exp + 30)
  redis.call('ZADD', p .. 'rev:index', exp + 30, typ .. ':' .. v)
end
return n" 0 revbench_b: "$ENTRIES" "$exp" >/dev/null

read -r ga_port ga_admin < <(start_gateway ga "$auth_a")
read -r ga2_port ga2_admin < <(start_gateway ga2 "$auth_a")
read -r gb_port gb_admin < <(start_gateway gb "$auth_b")
read -r gc_port _ < <(start_gateway gc "$auth_c")
read -r gc2_port _ < <(start_gateway gc2 "$auth_c")
held=$(curl -s "http://127.0.0.1:$gb_admin/metrics" | awk '$1=="gateway_revocation_entries" {print $2}')
[ "$held" = "$ENTRIES" ] || { echo "bench: the 100k gateway holds $held entries"; exit 1; }
token_a=$(token_from "$auth_a"); token_b=$(token_from "$auth_b")
for pt in "$ga_port:$token_a" "$gb_port:$token_b"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer ${pt#*:}" "http://127.0.0.1:${pt%%:*}/x")
  [ "$code" = 200 ] || { echo "bench: a gateway answered $code"; exit 1; }
done

run() { # $1 = name, $2 = port, $3 = token
  taskset -c "$LOAD_CPUS" wrk -t2 -c"$CONNS" -d2s -H "Authorization: Bearer $3" "http://127.0.0.1:$2/x" >/dev/null
  taskset -c "$LOAD_CPUS" wrk -t2 -c"$CONNS" -d"${DURATION}s" -H "Authorization: Bearer $3" "http://127.0.0.1:$2/x" > "$work/$1.txt"
  echo "$1 $(awk '/^Requests\/sec/ {print $2}' "$work/$1.txt") $(awk '/Non-2xx/ {print $5}' "$work/$1.txt" | grep . || echo 0)"
}
echo "bench: $ROUNDS rounds × ${DURATION}s per gateway, $CONNS connections; services on CPU $SVC_CPUS, wrk + upstream + client on CPU $LOAD_CPUS" >&2
results=$(for r in $(seq 1 "$ROUNDS"); do
  run none "$ga_port" "$token_a" | sed "s/^/$r /"
  run big "$gb_port" "$token_b" | sed "s/^/$r /"
done)
latency=$(taskset -c "$LOAD_CPUS" python3 scripts/bench/revocation_latency.py "$auth_a" "http://127.0.0.1:$ga_port" "http://127.0.0.1:$ga2_port" "$REVOCATIONS")
latency_c=$(taskset -c "$LOAD_CPUS" python3 scripts/bench/revocation_latency.py "$auth_c" "http://127.0.0.1:$gc_port" "http://127.0.0.1:$gc2_port" "$REVOCATIONS")
rss_none=$(ps -o rss= -p "$(cat "$work/ga.pid")" || echo 0)
rss_big=$(ps -o rss= -p "$(cat "$work/gb.pid")" || echo 0)

RESULTS="$results" LATENCY="$latency" LATENCY_C="$latency_c" ENTRIES="$ENTRIES" python3 - <<'PY'
import json, os, statistics as st
rows = {}
for line in os.environ["RESULTS"].strip().splitlines():
    r, name, rps, bad = line.split()
    rows.setdefault(name, {})[int(r)] = (float(rps), int(bad))
rounds = sorted(rows["none"])
ratios = [rows["big"][r][0] / rows["none"][r][0] for r in rounds]
lat = json.loads(os.environ["LATENCY"])
n = int(os.environ["ENTRIES"])
print()
print(f"| Gateway (1 core; median of {len(rounds)} interleaved rounds) | Requests/s | non-2xx |")
print("| --- | --- | --- |")
print(f"| no revocation entries | {st.median(rows['none'][r][0] for r in rounds):.0f} | {sum(rows['none'][r][1] for r in rounds)} |")
print(f"| {n:,} live entries | {st.median(rows['big'][r][0] for r in rounds):.0f} | {sum(rows['big'][r][1] for r in rounds)} |")
print(f"\nThroughput with {n:,} entries vs none: {st.median(ratios):.3f}× (rounds {min(ratios):.3f}–{max(ratios):.3f}); cost {100 * (1 - st.median(ratios)):.1f}%")
pg, both = lat["per_gateway_ms"], lat["both_gateways_ms"]
print(f"\nPropagation over {lat['revocations']} logouts (logout returned → gateway answers 401):")
print(f"| | p50 ms | p99 ms | max ms |")
print(f"| --- | --- | --- | --- |")
print(f"| each gateway ({2 * lat['revocations']} samples) | {pg['p50']} | {pg['p99']} | {pg['max']} |")
print(f"| both gateways rejecting | {both['p50']} | {both['p99']} | {both['max']} |")
c = json.loads(os.environ["LATENCY_C"])
print(f"\nThe logout call itself (its acknowledgement), {lat['revocations']} each:")
print(f"| | p50 ms | p99 ms | max ms |")
print(f"| --- | --- | --- | --- |")
lo, lc = lat["logout_ms"], c["logout_ms"]
print(f"| AUTH_FEED_OUTAGE_GRACE=30 (default: waits for the feed readers) | {lo['p50']} | {lo['p99']} | {lo['max']} |")
print(f"| AUTH_FEED_OUTAGE_GRACE=0 (reference: nobody registers, nothing to wait for) | {lc['p50']} | {lc['p99']} | {lc['max']} |")
print(f"Ratio at the median: {lo['p50'] / lc['p50']:.2f}×; propagation without the wait: p50 {c['both_gateways_ms']['p50']} ms, p99 {c['both_gateways_ms']['p99']} ms (both gateways)")
PY
echo "resident memory after the runs: $((rss_none / 1024)) MiB with no entries, $((rss_big / 1024)) MiB with $ENTRIES"
