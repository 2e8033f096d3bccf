#!/usr/bin/env bash
# Auth-service benchmark (not run in CI). Measures, in one run:
#   - logins/s at the shipped Argon2id settings, as a ratio of the Argon2 limit
#     (service cores ÷ one hash's time, timed here on the service's core);
#   - sign-ins/s through the whole browser flow (GET /v1/authorize → the sign-in page, POST
#     /v1/signin with the password → the code, POST /v1/token with PKCE → the tokens; a browser
#     without a session each time), as a ratio of the same Argon2 limit;
#   - refreshes/s (opaque refresh tokens: one RS256 signature each, the access token's), as a
#     ratio of the RS256 signing limit (`openssl speed rsa2048` signs/s on the service's core × its
#     cores);
#   - refreshes/s of signed refresh tokens issued by earlier versions (the transition: each one
#     presented once, its signature verified, then one signature), as a ratio of the limit of one
#     verification and one signature per refresh;
#   - client-credentials grants/s (one signature each), against the same signing limit;
#   - /healthz p99 while logins saturate the service's CPU.
# AUTH_SIGNING_ALG=ES256 or EdDSA measures issuance with that algorithm (limits from `openssl speed
# ecdsap256` / `ed25519`); PARTS picks what to run (default: logins flows refreshes legacy
# credentials; the signed tokens of earlier versions are RS256, so `legacy` needs RS256).
# The service is pinned to SVC_CPUS; wrk, and private PostgreSQL and Redis instances, to LOAD_CPUS,
# so the limits are computed for exactly the cores the service has. See BENCHMARKS.md.
# The brute-force defence is off (AUTH_THROTTLE=off): every login comes from one address, and
# what is measured is the service's capacity, not its throttling.
set -euo pipefail
cd "$(dirname "$0")/../.."

SVC_CPUS="${SVC_CPUS:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
DURATION="${DURATION:-20}"
USERS="${BENCH_USERS:-64}"
REFRESH_CLIENTS="${REFRESH_CLIENTS:-32}"
SIGNING_ALG="${AUTH_SIGNING_ALG:-RS256}"
PARTS="${PARTS:-logins flows refreshes legacy credentials}"
part() { [[ " $PARTS " == *" $1 "* ]]; }
# The signed refresh tokens of earlier versions were all RS256.
[ "$SIGNING_ALG" = RS256 ] || PARTS="${PARTS/legacy/}"

for tool in wrk taskset openssl redis-server curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (Debian: apt-get install wrk redis-server openssl curl)"; exit 1; }
done
ncpu() { python3 -c "import sys; n=0
for part in sys.argv[1].split(','):
    a, _, b = part.partition('-'); n += (int(b) - int(a) + 1) if b else 1
print(n)" "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
to_ms() { python3 -c "import re,sys; m=re.match(r'([0-9.]+)(us|ms|s)', sys.argv[1]); v=float(m[1]); print(round(v/1000 if m[2]=='us' else v*1000 if m[2]=='s' else v, 3))" "$1"; }

svc_n=$(ncpu "$SVC_CPUS")
echo "bench: service on CPU(s) $SVC_CPUS ($svc_n core(s)); wrk, PostgreSQL and Redis on CPU(s) $LOAD_CPUS" >&2
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p auth-service --bin auth-service --example hash_time --example signin_load --example mint_tokens

work=$(mktemp -d /tmp/authbench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${pgbin:-}" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && return; [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# Private Redis on the load cores.
redis_port=$(free_port)
taskset -c "$LOAD_CPUS" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --maxmemory-policy noeviction --daemonize yes --pidfile "$work/redis.pid" --dir "$work" --logfile "$work/redis.log"

# Private PostgreSQL on the load cores when we can make one (root + Debian's binaries);
# otherwise the machine's server, unpinned (said in the output).
pg_note="private, pinned"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ "$(id -u)" = 0 ] && [ -n "$pgbin" ] && command -v runuser >/dev/null; then
  pg_port=$(free_port)
  mkdir "$work/pg" && chown postgres "$work/pg"
  runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
  runuser -u postgres -- taskset -c "$LOAD_CPUS" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
  db_url="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
else
  pgbin=""
  eval "$(bash scripts/services.sh)"
  db_url="$TEST_DATABASE_URL"
  pg_note="the machine's, unpinned"
fi

# Limits, measured on the service's core right before and right after every load round, so a
# machine that speeds up or slows down during the run does not skew the ratio.
first_cpu=$(echo "$SVC_CPUS" | sed 's/[,-].*//')
argon_limit() { python3 -c "print($svc_n * 1000 / $(taskset -c "$first_cpu" ./target/release/examples/hash_time 30))"; }
settle() { sleep 1; }  # let queued work drain before timing a reference
# "signs/s verifies/s" of the signing algorithm on the service's core.
rsa_speed() {
  case "$SIGNING_ALG" in
    RS256) taskset -c "$first_cpu" openssl speed -seconds 2 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $6, $7}' ;;
    ES256) taskset -c "$first_cpu" openssl speed -seconds 2 ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ {print $7, $8}' ;;
    EdDSA) taskset -c "$first_cpu" openssl speed -seconds 2 ed25519 2>/dev/null | awk '/EdDSA \(Ed25519\)/ {print $7, $8}' ;;
  esac
}
rsa_signs() { rsa_speed | awk '{print $1}'; }
# Refreshes per second per core when each verifies one signature and makes one.
rsa_verify_sign() { rsa_speed | awk '{print 1 / (1 / $1 + 1 / $2)}'; }
ROUNDS="${ROUNDS:-3}"
round_s=$((DURATION / ROUNDS))

port=$(free_port)
base="http://127.0.0.1:$port"
# The app of the sign-in flow: a public client, provisioned at start.
echo '[{"client_id": "bench", "type": "public", "first_party": true, "redirect_uris": ["http://127.0.0.1/cb"]}]' > "$work/clients.json"
export AUTH_BOOTSTRAP_CLIENTS_FILE="$work/clients.json" AUTH_DATABASE_URL="$db_url" AUTH_REDIS_URL="redis://127.0.0.1:$redis_port" AUTH_REDIS_PREFIX="bench:" \
  AUTH_LISTEN="127.0.0.1:$port" AUTH_ISSUER="$base" RUST_LOG=warn AUTH_THROTTLE=off AUTH_KEY_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
  AUTH_SIGNING_ALG="$SIGNING_ALG"
taskset -c "$SVC_CPUS" ./target/release/auth-service > "$work/auth.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "$base/readyz" >/dev/null || { cat "$work/auth.log"; exit 1; }

echo "bench: registering $USERS users" >&2
for i in $(seq 0 $((USERS - 1))); do
  curl -sf -o /dev/null -X POST "$base/v1/users" -H 'content-type: application/json' \
    -d "{\"username\":\"bench-$i\",\"password\":\"correct horse battery staple\"}"
done

svc_pid=${pids[0]}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$svc_pid/stat"; }
hz=$(getconf CLK_TCK)

echo "bench: logins, $ROUNDS rounds of ${round_s}s (with /healthz latency alongside)" >&2
login_rows=""
for r in $(part logins && seq 1 "$ROUNDS"); do
  before=$(argon_limit)
  t0=$(cpu_ticks); s0=$(date +%s.%N)
  BENCH_USERS=$USERS taskset -c "$LOAD_CPUS" wrk -t2 -c16 -d"${round_s}s" --latency -s scripts/bench/login.lua "$base" > "$work/login.txt" &
  login_pid=$!
  sleep 1
  taskset -c "$LOAD_CPUS" wrk -t1 -c1 -d"$((round_s - 2))s" --latency -s scripts/bench/probe.lua "$base/healthz" > "$work/health.txt"
  wait $login_pid
  busy=$(python3 -c "print(round(100 * ($(cpu_ticks) - $t0) / $hz / ($(date +%s.%N) - $s0) / $svc_n))")
  settle
  after=$(argon_limit)
  rate=$(awk '/^Requests\/sec/ {print $2}' "$work/login.txt")
  errors=$(awk '/Non-2xx/ {print $5}' "$work/login.txt")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/health.txt")")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$work/health.txt")")
  login_rows+="$rate ${errors:-0} $before $after $busy $p50 $p99"$'\n'
done

echo "bench: sign-ins through the whole flow, $ROUNDS rounds of ${round_s}s (16 concurrent flows)" >&2
flow_rows=""
for r in $(part flows && seq 1 "$ROUNDS"); do
  before=$(argon_limit)
  t0=$(cpu_ticks); s0=$(date +%s.%N)
  out=$(taskset -c "$LOAD_CPUS" ./target/release/examples/signin_load "$base" bench http://127.0.0.1:1/cb bench- "$USERS" 16 "$round_s")
  busy=$(python3 -c "print(round(100 * ($(cpu_ticks) - $t0) / $hz / ($(date +%s.%N) - $s0) / $svc_n))")
  settle
  after=$(argon_limit)
  flow_rows+="$out $before $after $busy"$'\n'
done

echo "bench: refreshes, $ROUNDS rounds of ${round_s}s ($REFRESH_CLIENTS clients, closed rotation loops)" >&2
refresh_rows=""
# One round of closed rotation loops against the service at $base; prints its row.
refresh_round() {
  : > "$work/tokens"
  for i in $(seq 0 $((REFRESH_CLIENTS - 1))); do
    curl -sf -X POST "$base/v1/login" -d "username=bench-$i" --data-urlencode "password=correct horse battery staple" \
      | python3 -c 'import sys, json; print(json.load(sys.stdin)["refresh_token"])' >> "$work/tokens"
  done
  local before after t0 s0 busy rate failures p99
  before=$(rsa_signs)
  t0=$(cpu_ticks); s0=$(date +%s.%N)
  # PERF_OUT=<file>: sample the service's CPU (perf record, call graphs) during the first round.
  if [ -n "${PERF_OUT:-}" ] && [ "$1" = 1 ]; then
    perf record -q -F 999 -g -o "$PERF_OUT" -p "$svc_pid" -- sleep "$((round_s - 1))" 2>/dev/null &
  fi
  BENCH_TOKENS="$work/tokens" taskset -c "$LOAD_CPUS" wrk -t"$REFRESH_CLIENTS" -c"$REFRESH_CLIENTS" -d"${round_s}s" --latency \
    -s scripts/bench/refresh.lua "$base" > "$work/refresh.txt"
  busy=$(python3 -c "print(round(100 * ($(cpu_ticks) - $t0) / $hz / ($(date +%s.%N) - $s0) / $svc_n))")
  settle
  after=$(rsa_signs)
  rate=$(awk '/^Requests\/sec/ {print $2}' "$work/refresh.txt")
  failures=$(awk '/^refresh failures/ {print $3}' "$work/refresh.txt")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/refresh.txt")")
  echo "$rate $failures $before $after $busy $p99"
}
for r in $(part refreshes && seq 1 "$ROUNDS"); do
  refresh_rows+="$(refresh_round "$r")"$'\n'
done

LEGACY_TOKENS="${LEGACY_TOKENS:-60000}"
echo "bench: signed refresh tokens of an earlier version, $ROUNDS rounds of ${round_s}s ($REFRESH_CLIENTS clients, $LEGACY_TOKENS tokens a round, each presented once)" >&2
legacy_rows=""
for r in $(part legacy && seq 1 "$ROUNDS"); do
  taskset -c "$LOAD_CPUS" ./target/release/examples/mint_tokens "$LEGACY_TOKENS" 3600 refresh:bench-0 > "$work/legacy.txt"
  before=$(rsa_verify_sign)
  t0=$(cpu_ticks); s0=$(date +%s.%N)
  BENCH_TOKENS="$work/legacy.txt" BENCH_THREADS="$REFRESH_CLIENTS" taskset -c "$LOAD_CPUS" wrk -t"$REFRESH_CLIENTS" -c"$REFRESH_CLIENTS" -d"${round_s}s" --latency \
    -s scripts/bench/refresh_once.lua "$base" > "$work/legacy_out.txt"
  busy=$(python3 -c "print(round(100 * ($(cpu_ticks) - $t0) / $hz / ($(date +%s.%N) - $s0) / $svc_n))")
  settle
  after=$(rsa_verify_sign)
  rate=$(awk '/^Requests\/sec/ {print $2}' "$work/legacy_out.txt")
  failures=$(awk '/^refresh failures/ {print $3}' "$work/legacy_out.txt")
  exhausted=$(awk '/^tokens exhausted/ {print $3}' "$work/legacy_out.txt")
  [ "$exhausted" = 0 ] || echo "bench: $exhausted requests ran out of tokens: raise LEGACY_TOKENS" >&2
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/legacy_out.txt")")
  legacy_rows+="$rate $failures $before $after $busy $p99"$'\n'
done

echo "bench: client credentials, $ROUNDS rounds of ${round_s}s ($REFRESH_CLIENTS connections)" >&2
cc_rows=""
if part credentials; then
  cc=$(./target/release/auth-service clients create bench-service --grant-type client_credentials --name "bench service")
  cc_secret=$(echo "$cc" | python3 -c 'import sys, json; print(json.load(sys.stdin)["client_secret"])')
fi
for r in $(part credentials && seq 1 "$ROUNDS"); do
  before=$(rsa_signs)
  t0=$(cpu_ticks); s0=$(date +%s.%N)
  BENCH_CLIENT_ID=bench-service BENCH_CLIENT_SECRET="$cc_secret" taskset -c "$LOAD_CPUS" wrk -t2 -c"$REFRESH_CLIENTS" -d"${round_s}s" --latency \
    -s scripts/bench/client_credentials.lua "$base" > "$work/cc.txt"
  busy=$(python3 -c "print(round(100 * ($(cpu_ticks) - $t0) / $hz / ($(date +%s.%N) - $s0) / $svc_n))")
  settle
  after=$(rsa_signs)
  rate=$(awk '/^Requests\/sec/ {print $2}' "$work/cc.txt")
  errors=$(awk '/Non-2xx/ {print $5}' "$work/cc.txt")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/cc.txt")")
  cc_rows+="$rate ${errors:-0} $before $after $busy $p99"$'\n'
done

# REF_AUTH=<binary>: the same refresh rounds against a reference build (an earlier commit's
# release binary) on the same stores and core, after the rest; its refresh tokens are whatever it
# issues (signed ones, for builds before opaque refresh tokens).
ref_rows=""
if [ -n "${REF_AUTH:-}" ] && part refreshes; then
  echo "bench: refreshes on REF_AUTH ($REF_AUTH), $ROUNDS rounds of ${round_s}s" >&2
  kill "$svc_pid"; wait "$svc_pid" 2>/dev/null || true
  taskset -c "$SVC_CPUS" "$REF_AUTH" > "$work/ref.log" 2>&1 &
  svc_pid=$!; pids+=($svc_pid)
  for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.2; done
  curl -sf "$base/readyz" >/dev/null || { cat "$work/ref.log"; exit 1; }
  for r in $(seq 1 "$ROUNDS"); do
    ref_rows+="$(refresh_round "$r")"$'\n'
  done
fi

REF_ROWS="$ref_rows" LOGIN_ROWS="$login_rows" FLOW_ROWS="$flow_rows" REFRESH_ROWS="$refresh_rows" LEGACY_ROWS="$legacy_rows" CC_ROWS="$cc_rows" SVC_N="$svc_n" PG_NOTE="$pg_note" ALG="$SIGNING_ALG" python3 - <<'PY'
import os, statistics as st
n = int(os.environ["SVC_N"])
alg = os.environ["ALG"]
rows = lambda k: [list(map(float, l.split())) for l in os.environ[k].strip().splitlines()]
logins, flows, refreshes, legacy, cc, ref = (rows(k) for k in ("LOGIN_ROWS", "FLOW_ROWS", "REFRESH_ROWS", "LEGACY_ROWS", "CC_ROWS", "REF_ROWS"))
pct = lambda rows, f: [100 * r[0] / f(r) for r in rows]
argon = lambda r: (r[2] + r[3]) / 2
signs = lambda r: n * (r[2] + r[3]) / 2
fmt = lambda xs: f"{st.median(xs):.1f}% (rounds: {', '.join(f'{x:.1f}' for x in xs)})"
lim = lambda rows, f: f"{min(f(r) for r in rows):.0f}–{max(f(r) for r in rows):.0f}/s"
print()
print(f"| Measure (service on {n} core(s); PostgreSQL {os.environ['PG_NOTE']}; signing {alg}) | Result (median of rounds) | Reference, measured around each round | Ratio | Target |")
print("| --- | --- | --- | --- | --- |")
if logins:
    print(f"| Logins/s (Argon2id m=19456 KiB, t=2, p=1) | {st.median(r[0] for r in logins):.1f} ({int(sum(r[1] for r in logins))} errors; service CPU {st.median(r[4] for r in logins):.0f}% busy) "
          f"| Argon2 limit = cores ÷ one hash's time: {lim(logins, argon)} | {fmt(pct(logins, argon))} | ≥ 90% |")
if flows:
    print(f"| Sign-ins/s through the whole browser flow (authorize page, password, code, token exchange with PKCE; ID and access token signed) | {st.median(r[0] for r in flows):.1f} ({int(sum(r[1] for r in flows))} failures; service CPU {st.median(r[4] for r in flows):.0f}% busy) "
          f"| Argon2 limit: {lim(flows, argon)} | {fmt(pct(flows, argon))} | ≥ 85% |")
if refreshes:
    print(f"| Refreshes/s (opaque refresh tokens: 1 {alg} signature each) | {st.median(r[0] for r in refreshes):.1f} ({int(sum(r[1] for r in refreshes))} failures; p99 {st.median(r[5] for r in refreshes):.2f} ms; service CPU {st.median(r[4] for r in refreshes):.0f}% busy) "
          f"| {alg} limit = openssl signs/s × cores: {lim(refreshes, signs)} | {fmt(pct(refreshes, signs))} | ≥ 85% |")
if ref:
    print(f"| Refreshes/s on REF_AUTH (the reference build), same stores and core, after the rest | {st.median(r[0] for r in ref):.1f} ({int(sum(r[1] for r in ref))} failures; p99 {st.median(r[5] for r in ref):.2f} ms; service CPU {st.median(r[4] for r in ref):.0f}% busy) "
          f"| {alg} limit = openssl signs/s × cores: {lim(ref, signs)} | {fmt(pct(ref, signs))} | — |")
    if refreshes:
        print(f"| This build ÷ REF_AUTH, refreshes/s | {st.median(r[0] for r in refreshes) / st.median(r[0] for r in ref):.2f}× (as shares of the limit: {st.median(pct(refreshes, signs)) / st.median(pct(ref, signs)):.2f}×) | — | — | — |")
if legacy:
    print(f"| Refreshes/s of signed refresh tokens of an earlier version (the transition: each presented once; 1 verification + 1 signature each) | {st.median(r[0] for r in legacy):.1f} ({int(sum(r[1] for r in legacy))} failures; p99 {st.median(r[5] for r in legacy):.2f} ms; service CPU {st.median(r[4] for r in legacy):.0f}% busy) "
          f"| limit = cores ÷ (1/signs + 1/verifies): {lim(legacy, signs)} | {fmt(pct(legacy, signs))} | — |")
if cc:
    print(f"| Client-credentials grants/s (1 {alg} signature each) | {st.median(r[0] for r in cc):.1f} ({int(sum(r[1] for r in cc))} errors; p99 {st.median(r[5] for r in cc):.2f} ms; service CPU {st.median(r[4] for r in cc):.0f}% busy) "
          f"| {alg} limit = openssl signs/s × cores: {lim(cc, signs)} | {fmt(pct(cc, signs))} | — |")
if logins:
    print(f"| /healthz latency while logins saturate | p50 {st.median(r[5] for r in logins):.3f} ms, p99 {st.median(r[6] for r in logins):.2f} ms (worst round {max(r[6] for r in logins):.2f} ms) | — | — | p99 < 5 ms |")
PY
