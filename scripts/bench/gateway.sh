#!/usr/bin/env bash
# Gateway benchmark (not run in CI). One run, the same load generator for every contender:
#   direct upstream · nginx as a plain reverse proxy · HAProxy 2.6 verifying RS256 (jwt_verify)
#   · our gateway verifying the same tokens,
# in token mixes (MIXES, all by default), each for every contender in the same run:
#   one   one token, over and over: the gateway's best case (a hit in its verified-token cache)
#   fit   5,000 tokens in turn: a working set that fits the cache (10,000 per worker)
#   over  60,000 tokens in turn: more distinct tokens than the cache holds
#   zipf  100,000 tokens drawn from a Zipf distribution (exponent 1.0): many users, a few of
#         them far busier than the rest, as real traffic is
#   cold  100,000 tokens in turn, and a second gateway with its cache off ("gateway, cold"):
#         every request verified, the cold path. Reported against the limit measured in the same
#         run on the same core: 1 / (one RSA-2048 verification, from `openssl speed`, + nginx's
#         CPU per request in this mix)
# The tokens are distinct access tokens of distinct users and sessions, signed by the running
# auth-service's key (auth-service/examples/mint_tokens.rs). Requests are formatted once, before
# the measured loop (scripts/bench/mix.lua). HAProxy checks the signature of every request; nginx
# checks nothing (the plain-proxy reference); the gateway verifies, caches, and checks revocation.
# Each contender gets SVC_CPUS (one worker/thread); wrk and the upstream run on LOAD_CPUS.
# Also: the gateway's resident memory holding 10k idle keep-alive connections. See BENCHMARKS.md.
# GATEWAY_CACHE=n sets the gateway's verified_token_cache (default 10000); the resident memory at
# start and after the mixes is printed.
# REF_GATEWAY=<path to another gateway binary> adds it as a contender ("gateway_ref", e.g. an
# earlier commit's build), so that a change is measured against what it changes in the same run.
set -euo pipefail
cd "$(dirname "$0")/../.."

SVC_CPUS="${SVC_CPUS:-0}"; LOAD_CPUS="${LOAD_CPUS:-1}"
DURATION="${DURATION:-15}"; CONNS="${CONNS:-64}"; IDLE="${IDLE:-10000}"  # ROUNDS (default 3) below
MIXES="${MIXES:-one fit over zipf cold}"
# AUTH_SIGNING_ALG=ES256 or EdDSA: the tokens are signed so, the gateways allow that algorithm,
# the cold path's limit is that algorithm's verification (openssl speed ecdsap256 / ed25519),
# and HAProxy (RS256 configured here; its jwt_verify has no EdDSA) sits out.
SIGNING_ALG="${AUTH_SIGNING_ALG:-RS256}"
for tool in wrk taskset nginx haproxy curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (Debian: apt-get install wrk nginx-light haproxy curl)"; exit 1; }
done
ulimit -n "$(ulimit -Hn)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
to_ms() { python3 -c "import re,sys; m=re.match(r'([0-9.]+)(us|ms|s)', sys.argv[1]); v=float(m[1]); print(round(v/1000 if m[2]=='us' else v*1000 if m[2]=='s' else v, 3))" "$1"; }

eval "$(bash scripts/services.sh)"
cargo build --release -q -p auth-service -p gateway --bins --example mint_tokens
[ -x target/interop-venv/bin/python ] || { python3 -m venv target/interop-venv; target/interop-venv/bin/pip install -q 'pyjwt[crypto]==2.10.1'; }

work=$(mktemp -d /tmp/gwbench.XXXXXX); chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS gwbench WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The auth-service only issues the token and serves the JWKS; it is idle during the runs.
auth_port=$(free_port); auth="http://127.0.0.1:$auth_port"
psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS gwbench WITH (FORCE)" -c "CREATE DATABASE gwbench" >/dev/null
export AUTH_DATABASE_URL="${TEST_DATABASE_URL%/*}/gwbench" AUTH_REDIS_URL="$TEST_REDIS_URL" AUTH_REDIS_PREFIX="gwbench:" \
  AUTH_LISTEN="127.0.0.1:$auth_port" AUTH_ISSUER="$auth" AUTH_ACCESS_TOKEN_TTL=3600 RUST_LOG=warn AUTH_THROTTLE=off \
  AUTH_FEED_TOKEN=bench-feed-token-0123456789abcdef AUTH_KEY_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
  AUTH_SIGNING_ALG="$SIGNING_ALG"
taskset -c "$LOAD_CPUS" ./target/release/auth-service > "$work/auth.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "$auth/readyz" >/dev/null && break; sleep 0.2; done
# 100,000 distinct tokens (each its own user and session), signed with the service's key.
ntokens=100000
for m in $MIXES; do case "$m" in one) ;; fit) ;; over) ;; zipf) ;; cold) ;; *) echo "bench: unknown mix $m"; exit 1 ;; esac; done
./target/release/examples/mint_tokens "$ntokens" 7200 > "$work/tokens.txt"
[ "$(wc -l < "$work/tokens.txt")" = "$ntokens" ] || { echo "bench: minting tokens failed"; exit 1; }
curl -sf -X POST "$auth/v1/users" -H 'content-type: application/json' -d '{"username":"bench","password":"correct horse battery staple"}' >/dev/null
token=$(curl -sf -X POST "$auth/v1/login" -d username=bench --data-urlencode "password=correct horse battery staple" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
[ "$SIGNING_ALG" = RS256 ] && curl -sf "$auth/.well-known/jwks.json" | target/interop-venv/bin/python -c '
import sys, json, base64
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from cryptography.hazmat.primitives import serialization
k = json.load(sys.stdin)["keys"][0]
b = lambda s: int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")
pem = RSAPublicNumbers(b(k["e"]), b(k["n"])).public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
sys.stdout.write(pem.decode())' > "$work/pub.pem"

nginx_conf() { # $1 = file, $2 = server block
  cat > "$1" <<NGINX
worker_processes 1;
worker_rlimit_nofile 20000;
daemon on;
pid $1.pid;
error_log $work/nginx-error.log;
events { worker_connections 19000; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work; uwsgi_temp_path $work; scgi_temp_path $work;
  $2
}
NGINX
}
# Upstream: answers "ok" on the load cores (and a second copy on the service cores for "direct").
up_port=$(free_port); direct_port=$(free_port)
nginx_conf "$work/upstream.conf" "server { listen 127.0.0.1:$up_port; location / { return 200 'ok'; } }"
nginx_conf "$work/direct.conf" "server { listen 127.0.0.1:$direct_port; location / { return 200 'ok'; } }"
taskset -c "$LOAD_CPUS" nginx -c "$work/upstream.conf" -e "$work/nginx-error.log"
taskset -c "$SVC_CPUS" nginx -c "$work/direct.conf" -e "$work/nginx-error.log"
for f in upstream direct; do for _ in $(seq 1 50); do [ -s "$work/$f.conf.pid" ] && break; sleep 0.1; done; cp "$work/$f.conf.pid" "$work/$f.pid"; done

ngx_port=$(free_port)
nginx_conf "$work/proxy.conf" "upstream up { server 127.0.0.1:$up_port; keepalive 256; }
  server { listen 127.0.0.1:$ngx_port; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
taskset -c "$SVC_CPUS" nginx -c "$work/proxy.conf" -e "$work/nginx-error.log"
for _ in $(seq 1 50); do [ -s "$work/proxy.conf.pid" ] && break; sleep 0.1; done; cp "$work/proxy.conf.pid" "$work/proxy.pid"

hap_port=$(free_port)
cat > "$work/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 9000
  pidfile $work/d.pid
defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$hap_port
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.alg) -m str RS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$work/pub.pem") -m int 1 }
  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('\$.iss')
  http-request deny deny_status 401 unless { var(txn.iss) -m str $auth }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  default_backend be
backend be
  server s1 127.0.0.1:$up_port
HAP
[ "$SIGNING_ALG" != RS256 ] || haproxy -c -f "$work/haproxy.cfg" >/dev/null
[ "$SIGNING_ALG" = RS256 ] && taskset -c "$SVC_CPUS" haproxy -D -f "$work/haproxy.cfg"

gw_port=$(free_port); gw_admin=$(free_port)
cat > "$work/gateway.toml" <<TOML
issuer = "$auth"
audiences = ["api"]
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:$gw_admin"
workers = 1
algorithms = ["$SIGNING_ALG"]
verified_token_cache = ${GATEWAY_CACHE:-10000}
[[routes]]
prefix = "/"
upstream = "http://127.0.0.1:$up_port"
TOML
GATEWAY_CONFIG="$work/gateway.toml" GATEWAY_FEED_TOKEN=bench-feed-token-0123456789abcdef RUST_LOG=warn taskset -c "$SVC_CPUS" ./target/release/gateway > "$work/gateway.log" 2>&1 &
gw_pid=$!; pids+=($gw_pid)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$gw_admin/readyz" >/dev/null && break; sleep 0.2; done
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
gw_rss_start=$(rss_kib "$gw_pid")
contenders="nginx:$ngx_port haproxy:$hap_port gateway:$gw_port"
[ "$SIGNING_ALG" = RS256 ] || contenders="nginx:$ngx_port gateway:$gw_port"
# The cold path: the same gateway with its verified-token cache off.
cold_port=$(free_port); cold_admin=$(free_port)
sed -e "s/127.0.0.1:$gw_port/127.0.0.1:$cold_port/" -e "s/127.0.0.1:$gw_admin/127.0.0.1:$cold_admin/" \
  -e "s/^verified_token_cache = .*/verified_token_cache = 0/" "$work/gateway.toml" > "$work/gateway_cold.toml"
GATEWAY_CONFIG="$work/gateway_cold.toml" GATEWAY_FEED_TOKEN=bench-feed-token-0123456789abcdef RUST_LOG=warn taskset -c "$SVC_CPUS" ./target/release/gateway > "$work/gateway_cold.log" 2>&1 &
cold_pid=$!; pids+=($cold_pid)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$cold_admin/readyz" >/dev/null && break; sleep 0.2; done
contenders="$contenders gateway_cold:$cold_port"
# One verification on the contenders' core (OpenSSL's own figure, in this run).
case "$SIGNING_ALG" in
  RS256) verify_per_s=$(taskset -c "$SVC_CPUS" openssl speed -seconds 5 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $NF}') ;;
  ES256) verify_per_s=$(taskset -c "$SVC_CPUS" openssl speed -seconds 5 ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ {print $NF}') ;;
  EdDSA) verify_per_s=$(taskset -c "$SVC_CPUS" openssl speed -seconds 5 ed25519 2>/dev/null | awk '/EdDSA \(Ed25519\)/ {print $NF}') ;;
  *) echo "bench: AUTH_SIGNING_ALG must be RS256, ES256 or EdDSA"; exit 1 ;;
esac
if [ -n "${REF_GATEWAY:-}" ]; then
  ref_port=$(free_port); ref_admin=$(free_port)
  sed -e "s/127.0.0.1:$gw_port/127.0.0.1:$ref_port/" -e "s/127.0.0.1:$gw_admin/127.0.0.1:$ref_admin/" \
    "$work/gateway.toml" > "$work/gateway_ref.toml"
  GATEWAY_CONFIG="$work/gateway_ref.toml" GATEWAY_FEED_TOKEN=bench-feed-token-0123456789abcdef RUST_LOG=warn taskset -c "$SVC_CPUS" "$REF_GATEWAY" > "$work/gateway_ref.log" 2>&1 &
  ref_pid=$!; pids+=($ref_pid)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ref_admin/readyz" >/dev/null && break; sleep 0.2; done
  contenders="$contenders gateway_ref:$ref_port"
fi

# Every contender must accept the token and refuse a bad one before it is measured.
for name_port in $contenders; do
  p=${name_port#*:}
  for t in "$token" "$(head -n1 "$work/tokens.txt")" "$(tail -n1 "$work/tokens.txt")"; do
    ok=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $t" "http://127.0.0.1:$p/x")
    [ "$ok" = 200 ] || { echo "bench: ${name_port%%:*} answered $ok to a valid token"; exit 1; }
  done
done
forged=$(python3 -c '
import base64, sys
h, p, sig = sys.argv[1].split(".")
raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
raw[len(raw) // 2] ^= 1
print(h + "." + p + "." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="))' "$token")
for name_port in $contenders; do
  [ "${name_port%%:*}" = nginx ] && continue
  p=${name_port#*:}
  bad=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $forged" "http://127.0.0.1:$p/x")
  [ "$bad" = 401 ] || [ "$bad" = 403 ] || { echo "bench: ${name_port%%:*} accepted a forged token ($bad)"; exit 1; }
done

# The processes that serve each contender (every thread of them is counted).
pids_of() {
  case "$1" in
    direct) pgrep -P "$(cat "$work/direct.pid")" ;;
    nginx) pgrep -P "$(cat "$work/proxy.pid")" ;;
    haproxy) cat "$work/d.pid" ;;
    gateway) echo "$gw_pid" ;;
    gateway_ref) echo "$ref_pid" ;;
    gateway_cold) echo "$cold_pid" ;;
  esac
}
# The gateway's verified-token cache lookups so far: hits, misses.
cache_lookups() {
  curl -sf "http://127.0.0.1:$gw_admin/metrics" | awk -F'[ ]' '
    /^gateway_token_cache_lookups_total\{result="hit"\}/ {h = $2}
    /^gateway_token_cache_lookups_total\{result="miss"\}/ {m = $2}
    END {print h + 0, m + 0}'
}
# User and kernel CPU ticks (USER_HZ) used so far by these processes.
cpu_ticks() { for p in "$@"; do cat /proc/"$p"/task/*/stat; done 2>/dev/null | awk '{u += $14; s += $15} END {print u + 0, s + 0}'; }
# The wrk arguments of a mix: how many tokens, and in which order.
mix_args() {
  case "$1" in
    one) echo "$work/tokens.txt 1 rr" ;;
    fit) echo "$work/tokens.txt 5000 rr" ;;
    over) echo "$work/tokens.txt 60000 rr" ;;
    zipf) echo "$work/tokens.txt $ntokens zipf" ;;
    cold) echo "$work/tokens.txt $ntokens rr" ;;
  esac
}
run() { # $1 = name, $2 = port, $3 = mix
  local mix_arg
  mix_arg=$(mix_args "$3")
  # shellcheck disable=SC2086 # the mix's arguments
  taskset -c "$LOAD_CPUS" wrk -t2 -c"$CONNS" -d2s -s scripts/bench/mix.lua "http://127.0.0.1:$2/x" -- $mix_arg >/dev/null
  # PERF_OUT=<file>: also sample a contender's CPU (perf record, call graphs) during its run:
  # PERF_TARGET's (default gateway; gateway_cold for the cold path).
  if [ "$1" = "${PERF_TARGET:-gateway}" ] && [ -n "${PERF_OUT:-}" ]; then
    perf record -q -F 999 -g -o "$PERF_OUT" -p "$(pids_of "$1" | head -n1)" -- sleep "$DURATION" 2>/dev/null &
  fi
  local pids before after hits0
  pids=$(pids_of "$1" | tr '\n' ' ')
  [ "$1" = gateway ] && hits0=$(cache_lookups)
  # shellcheck disable=SC2086 # a list of pids
  before=$(cpu_ticks $pids)
  # shellcheck disable=SC2086
  taskset -c "$LOAD_CPUS" wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s scripts/bench/mix.lua "http://127.0.0.1:$2/x" -- $mix_arg > "$work/$1.txt"
  # shellcheck disable=SC2086
  after=$(cpu_ticks $pids)
  wait
  # The gateway's verified-token cache over the measured run: hits and misses.
  [ "$1" = gateway ] && echo "$3 $hits0 $(cache_lookups)" >> "$work/cache.txt"
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/$1.txt")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$work/$1.txt")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/$1.txt")")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$work/$1.txt"); non2xx=${non2xx:-0}
  echo "$3 $1 $rps $p50 $p99 $non2xx $before $after"
}
ROUNDS="${ROUNDS:-3}"
echo "bench: $ROUNDS rounds × ${DURATION}s per contender and mix ($MIXES), $CONNS connections, contender on CPU $SVC_CPUS, wrk + upstream on CPU $LOAD_CPUS" >&2
# Rounds interleave the contenders, so a machine that speeds up or slows down mid-run affects
# all of them alike; ratios are taken within each round and mix. nginx and the gateway run back
# to back, and every other round runs the contenders in reverse order, so a steady drift of the
# shared machine favours neither of them. The upstream alone ("direct") is measured in the first
# mix only: it reads no token.
order=(direct nginx gateway)
[ -n "${REF_GATEWAY:-}" ] && order+=(gateway_ref)
[ "$SIGNING_ALG" = RS256 ] && order+=(haproxy)
port_of() { case "$1" in direct) echo "$direct_port";; nginx) echo "$ngx_port";; gateway) echo "$gw_port";; gateway_ref) echo "$ref_port";; gateway_cold) echo "$cold_port";; haproxy) echo "$hap_port";; esac; }
first_mix=${MIXES%% *}
results=$(for r in $(seq 1 "$ROUNDS"); do
  for mix in $MIXES; do
    names=("${order[@]}")
    if [ $((r % 2)) = 0 ]; then for ((i = ${#order[@]} - 1, j = 0; i >= 0; i--, j++)); do names[j]=${order[i]}; done; fi
    for name in "${names[@]}"; do
      [ "$name" = direct ] && [ "$mix" != "$first_mix" ] && continue
      # The cold gateway only in the cold mix; there, it runs right after nginx.
      if [ "$mix" = cold ] && [ "$name" = nginx ]; then
        run nginx "$ngx_port" cold | sed "s/^/$r /"
        run gateway_cold "$cold_port" cold | sed "s/^/$r /"
        continue
      fi
      run "$name" "$(port_of "$name")" "$mix" | sed "s/^/$r /"
    done
  done
done)
gw_rss_warm=$(rss_kib "$gw_pid")
echo "bench: the gateway's resident memory: $((gw_rss_start / 1024)) MiB at start, $((gw_rss_warm / 1024)) MiB after the mixes (its verified-token cache bound: ${GATEWAY_CACHE:-10000} tokens)" >&2
[ -n "${REF_GATEWAY:-}" ] && echo "bench: REF_GATEWAY's resident memory after the mixes: $(($(rss_kib "$ref_pid") / 1024)) MiB" >&2
idle=$(taskset -c "$LOAD_CPUS" python3 scripts/bench/idle_conns.py 127.0.0.1 "$gw_port" "$IDLE" "$gw_pid" "$token" /x)

ALG="$SIGNING_ALG" VERIFY_PER_S="$verify_per_s" CACHE="$(cat "$work/cache.txt" 2>/dev/null)" RESULTS="$results" IDLE_OUT="$idle" DURATION="$DURATION" MIXES="$MIXES" python3 - <<'PY'
import os, statistics as st
rows = {}
hz = os.sysconf("SC_CLK_TCK")
duration = float(os.environ["DURATION"])
for line in os.environ["RESULTS"].strip().splitlines():
    r, mix, name, rps, p50, p99, bad, u0, s0, u1, s1 = line.split()
    # CPU per request, in µs: the contender's user and kernel time over the requests it answered.
    n = max(float(rps) * duration, 1.0)
    cpu = ((int(u1) - int(u0)) / hz * 1e6 / n, (int(s1) - int(s0)) / hz * 1e6 / n)
    rows.setdefault(mix, {}).setdefault(name, {})[int(r)] = (float(rps), float(p50), float(p99), int(bad), cpu)
names = {"direct": "upstream directly (no proxy)", "nginx": "nginx 1.22, plain reverse proxy", "haproxy": "HAProxy 2.6, jwt_verify RS256 + iss/exp", "gateway": f"our gateway, {os.environ['ALG']} verified", "gateway_ref": "REF_GATEWAY (the reference build)", "gateway_cold": "our gateway, cold: its cache off, every request verified"}
mixes = {"one": "one token (the gateway's best case: a verified-token cache hit)", "fit": "5,000 tokens in turn (fit the cache)", "over": "60,000 tokens in turn (more than the cache holds)", "zipf": "100,000 tokens, Zipf (exponent 1.0)", "cold": "100,000 tokens in turn, and the cold path (a gateway with its cache off)"}
for mix in os.environ["MIXES"].split():
    m = rows[mix]
    rounds = sorted(m["gateway"])
    med = lambda name, i: st.median(m[name][r][i] for r in rounds)
    ratio = lambda a, b: [m[a][r][0] / m[b][r][0] for r in rounds]
    rng = lambda v: f"{st.median(v):.2f}× ({min(v):.2f}–{max(v):.2f})"
    print()
    print(f"Mix: {mixes[mix]}")
    print()
    print(f"| Contender (1 core; median of {len(rounds)} interleaved rounds) | Requests/s | p50 ms | p99 ms (each round) | non-2xx | vs nginx | vs HAProxy | CPU µs/request (user + kernel) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for k in ["direct", "nginx", "haproxy", "gateway", "gateway_ref", "gateway_cold"]:
        if k not in m:
            continue
        p99s = ", ".join(f"{m[k][r][2]:.2f}" for r in rounds)
        u = st.median(m[k][r][4][0] for r in rounds)
        s = st.median(m[k][r][4][1] for r in rounds)
        print(f"| {names[k]} | {med(k, 0):.0f} | {med(k, 1):.2f} | {med(k, 2):.2f} ({p99s}) | {sum(m[k][r][3] for r in rounds)} | {rng(ratio(k, 'nginx'))} | {rng(ratio(k, 'haproxy')) if 'haproxy' in m else '—'} | {u:.2f} + {s:.2f} |")
    if "gateway_cold" in m:
        verify_us = 1e6 / float(os.environ["VERIFY_PER_S"])
        nginx_us = st.median(sum(m["nginx"][r][4]) for r in rounds)
        limit = 1e6 / (verify_us + nginx_us)
        got = [m["gateway_cold"][r][0] for r in rounds]
        print()
        print(f"Cold path against its limit on this core: one {os.environ['ALG']} verification {verify_us:.2f} µs (openssl speed: {float(os.environ['VERIFY_PER_S']):.0f}/s) + nginx's {nginx_us:.2f} µs of CPU per request = {limit:.0f} requests/s; the cold gateway does {st.median(got):.0f}, **{st.median(got) / limit:.2f}× the limit** (each round: {', '.join(f'{g / limit:.2f}' for g in got)}).")
    rates = []
    for line in os.environ.get("CACHE", "").splitlines():
        cmix, h0, m0, h1, m1 = line.split()
        looked = (int(h1) - int(h0)) + (int(m1) - int(m0))
        if cmix == mix and looked:
            rates.append((int(h1) - int(h0)) / looked)
    if rates:
        print()
        print(f"Our gateway's verified-token cache during the measured runs: {100 * st.median(rates):.1f}% hits (each round: {', '.join(f'{100 * x:.1f}%' for x in rates)}).")
n, ok, before, soon, later = map(int, os.environ["IDLE_OUT"].split())
print()
print(f"Gateway memory: {before/1024:.1f} MiB resident before; holding {n} idle keep-alive connections ({ok} answered 200): {soon/1024:.1f} MiB after 3 s, {later/1024:.1f} MiB after 15 s.")
PY
