"""Faults under load: the production shape on loopback, continuous mixed traffic with a client
that keeps the truth, one fault at a time, and what each did.

The shape: PostgreSQL and Redis of their own (Redis with AOF, appendfsync everysec, noeviction),
two auth-service replicas behind a TCP balancer (as a Kubernetes Service would be), two gateways
with an upstream, each gateway reaching the auth-service through relays this script controls
(one for the revocation feed, one for the JWKS and metadata), so a link can be cut.

The traffic (threads, persistent connections):
  - session workers: users log in, call the gateways with their access tokens, refresh in
    rotation loops (the newest refresh token is the truth), and now and then log out;
  - an admin: disables users holding live tokens, and enables them again;
  - a prober: presents every revoked token to each gateway directly, all the time.
The client acts as a load balancer would: a request that found no connection (refused, reset)
or a gateway answering 503 goes once to the other replica or gateway.

Faults, one at a time with recovery in between: Redis SIGKILL and restart; Redis stopped;
PostgreSQL stopped; one auth replica SIGKILL (and started again); the feed cut between one
gateway and the auth-service; the JWKS endpoint unreachable for both gateways; a rolling
gateway restart; one auth replica's clock ahead (within the leeway).

For each fault: valid gateway requests that failed, logins and refreshes that failed (503 with
Retry-After counted apart) and for how long, time to full recovery, refresh tokens lost (with
the everysec window of a SIGKILL counted apart), revoked or disabled tokens accepted after the
revocation was acknowledged plus the propagation bound, and 5xx other than 503.

Usage: chaos.py --bin DIR --out DIR [--smoke] [--fault-seconds N] [--soak SECONDS]
Exit status 1 when a revoked token was accepted, an acknowledged write was lost beyond the
documented window, or a 5xx other than 503 was seen.
"""

import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

PASSWORD = "correct horse battery staple"
# The access-token lifetime (the default); the soak renews its load's tokens every third of it.
ACCESS_TTL = 900
# The product's promise: a revocation reaches every gateway following the feed within a second.
PROPAGATION = 1.0
# AOF with appendfsync everysec: a SIGKILL may lose about the last second of writes.
EVERYSEC_WINDOW = 2.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now():
    return time.monotonic()


def log(msg):
    print(f"chaos: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process that can be stopped, killed and started again with the same command."""

    def __init__(self, name, argv, env, work, cwd=None, user=None, stop_signal=signal.SIGTERM):
        self.name, self.argv, self.env, self.work, self.cwd, self.user = name, argv, env, work, cwd, user
        self.stop_signal = stop_signal
        self.p = None
        self.log = open(work / f"{name}.log", "ab")

    def start(self):
        argv = (["runuser", "-u", self.user, "--"] + self.argv) if self.user and os.geteuid() == 0 else self.argv
        self.p = subprocess.Popen(argv, env={**os.environ, **self.env}, stdout=self.log, stderr=self.log,
                                  cwd=self.cwd, start_new_session=True)

    def signal(self, sig):
        if self.p and self.p.poll() is None:
            os.killpg(self.p.pid, sig)

    def stop(self, timeout=15):
        if self.p and self.p.poll() is None:
            self.signal(self.stop_signal)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.p.wait()

    def kill(self):
        if self.p and self.p.poll() is None:
            self.signal(signal.SIGKILL)
            self.p.wait()

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def rss_kib(self):
        """Resident memory of the process (the service itself, not a wrapper)."""
        if not self.alive():
            return None
        pid = self.p.pid
        # runuser and faketime exec or fork: take the newest descendant that is not a wrapper.
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                pid = int(children[-1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            return None
        return None


def cpu_seconds(roots):
    """CPU seconds (user + system) each of `roots` ({name: pid}) has used, with every process
    below it (PostgreSQL's backends, a wrapper's child). A name whose pid is None, or gone, is
    left out."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, used = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(d.name)
        parent[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    children = {}
    for pid, pp in parent.items():
        children.setdefault(pp, []).append(pid)
    out = {}
    for name, root in roots.items():
        if root is None or root not in used:
            continue
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            total += used.get(pid, 0.0)
            # The client's own threads only: its children are the stack, counted by name.
            if name != "client":
                todo.extend(children.get(pid, []))
        out[name] = round(total, 2)
    return out


def wait_http(url, timeout=60, ok=(200,)):
    deadline = now() + timeout
    last = None
    while now() < deadline:
        try:
            u = urllib.parse.urlsplit(url)
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=2)
            c.request("GET", u.path or "/")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status in ok:
                return
            last = r.status
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise SystemExit(f"chaos: {url} not ready within {timeout}s (last: {last})")


def pg_tool(tool):
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    if found:
        return str(found[-1])
    path = shutil.which(tool)
    if not path:
        raise SystemExit(f"chaos: {tool} not found (Debian: apt-get install postgresql)")
    return path


# ---------------------------------------------------------------------------------------------
# Relays: a TCP balancer in front of the auth replicas, and per-gateway links that can be cut


class Relay:
    """Forwards each accepted connection to the first target that accepts one, starting at the
    next in turn (a balancer when there are several). `cut()` closes every open connection and
    refuses new ones until `restore()`."""

    def __init__(self, loop, targets):
        self.loop, self.targets = loop, targets
        self.port = free_port()
        self.cut_ = False
        self.turn = 0
        self.open = set()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result()

    async def _serve(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader, writer):
        if self.cut_:
            writer.transport.abort()
            return
        upstream = None
        for i in range(len(self.targets)):
            host, port = self.targets[(self.turn + i) % len(self.targets)]
            try:
                upstream = await asyncio.open_connection(host, port)
                break
            except OSError:
                continue
        self.turn += 1
        if upstream is None:
            writer.transport.abort()
            return
        ur, uw = upstream
        pair = (writer, uw)
        self.open.add(pair)

        async def pump(r, w):
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                w.transport.abort()

        await asyncio.gather(pump(reader, uw), pump(ur, writer))
        self.open.discard(pair)

    def _abort_all(self):
        for a, b in list(self.open):
            a.transport.abort()
            b.transport.abort()

    def cut(self):
        self.cut_ = True
        self.loop.call_soon_threadsafe(self._abort_all)

    def restore(self):
        self.cut_ = False

    def url(self):
        return f"http://127.0.0.1:{self.port}"


# ---------------------------------------------------------------------------------------------
# The stack


class Stack:
    def __init__(self, bins, work, fault_seconds):
        self.bins, self.work = bins, work
        self.fault_seconds = fault_seconds
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
        # PostgreSQL.
        self.pg_port = free_port()
        pgdata = work / "pg"
        subprocess.run(([ "runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                       + [pg_tool("initdb"), "-D", str(pgdata), "-A", "trust", "-U", "postgres"],
                       check=True, stdout=subprocess.DEVNULL)
        self.pg = Proc("postgres", [pg_tool("postgres"), "-D", str(pgdata), "-p", str(self.pg_port),
                                    "-k", str(work), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"],
                       {}, work, user="postgres", stop_signal=signal.SIGINT)
        self.pg.start()
        self._wait_port(self.pg_port)
        time.sleep(0.5)
        db_url = f"postgres://postgres@127.0.0.1:{self.pg_port}/postgres?sslmode=disable"
        # Redis: AOF, fsync every second, no eviction (what production mode requires).
        self.redis_port = free_port()
        (work / "redis").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(work / "redis", "postgres")
        self.redis = Proc("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                    "--appendonly", "yes", "--appendfsync", "everysec",
                                    "--maxmemory-policy", "noeviction", "--save", "", "--dir", str(work / "redis")],
                          {}, work)
        self.redis.start()
        self._wait_port(self.redis_port)
        # The auth replicas, and the balancer in front of them (the issuer's address).
        self.auth_ports = [free_port(), free_port()]
        self.lb = Relay(self.loop, [("127.0.0.1", p) for p in self.auth_ports])
        self.issuer = self.lb.url()
        self.feed_token = "chaos-feed-token-0123456789abcdef0123"
        kek = subprocess.run(["openssl", "rand", "-base64", "32"], capture_output=True, text=True).stdout.strip()
        self.admin_password = "an admin passphrase for the chaos run"
        base_env = {
            "AUTH_DATABASE_URL": db_url,
            "AUTH_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
            "AUTH_REDIS_PREFIX": "chaos:",
            "AUTH_ISSUER": self.issuer,
            "AUTH_KEY_ENCRYPTION_KEY": kek,
            "AUTH_FEED_TOKEN": self.feed_token,
            "AUTH_FEED_HEARTBEAT_MS": "250",
            "AUTH_THROTTLE": "off",
            # The default lifetime, stated: the soak renews its tokens well inside it.
            "AUTH_ACCESS_TOKEN_TTL": str(ACCESS_TTL),
            "AUTH_BOOTSTRAP_ADMIN_USERNAME": "chaos-admin",
            "AUTH_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            "AUTH_REFRESH_REUSE_GRACE": "0",
            "AUTH_WORKERS": "2",
            "AUTH_STARTUP_TIMEOUT": "60",
            "RUST_LOG": "warn",
        }
        self.auth = []
        for i, port in enumerate(self.auth_ports):
            env = {**base_env, "AUTH_LISTEN": f"127.0.0.1:{port}"}
            self.auth.append(Proc(f"auth-{i + 1}", [str(bins / "auth-service")], env, work))
        self.auth[0].start()
        wait_http(f"http://127.0.0.1:{self.auth_ports[0]}/readyz")
        self.auth[1].start()
        wait_http(f"http://127.0.0.1:{self.auth_ports[1]}/readyz")
        # The upstream.
        self.up_port = free_port()
        self.upstream = Proc("upstream", [str(bins / "demo-upstream")], {"DEMO_LISTEN": f"127.0.0.1:{self.up_port}"}, work)
        self.upstream.start()
        wait_http(f"http://127.0.0.1:{self.up_port}/public", ok=(200, 404))
        # Two gateways, each with its own links to the auth-service.
        self.gw = []
        for i in range(2):
            feed = Relay(self.loop, [("127.0.0.1", self.lb.port)])
            jwks = Relay(self.loop, [("127.0.0.1", self.lb.port)])
            port, admin = free_port(), free_port()
            conf = work / f"gateway-{i + 1}.toml"
            conf.write_text(f"""
issuer = "{self.issuer}"
audiences = ["api"]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
workers = 2
discovery_url = "{jwks.url()}/.well-known/oauth-authorization-server"
jwks_url = "{jwks.url()}/.well-known/jwks.json"
feed_url = "{feed.url()}/v1/revocations"

[jwks]
min_refresh = 5
unknown_kid_cooldown = 2

[revocation]
max_staleness = 1
idle_timeout = 1

[[routes]]
prefix = "/api"
upstream = "http://127.0.0.1:{self.up_port}"
""")
            proc = Proc(f"gateway-{i + 1}", [str(bins / "gateway")],
                        {"GATEWAY_CONFIG": str(conf), "GATEWAY_FEED_TOKEN": self.feed_token, "RUST_LOG": "warn"}, work)
            proc.start()
            self.gw.append({"proc": proc, "port": port, "admin": admin, "feed": feed, "jwks": jwks})
        for g in self.gw:
            wait_http(f"http://127.0.0.1:{g['admin']}/readyz", timeout=60)

    def _wait_port(self, port, timeout=30):
        deadline = now() + timeout
        while now() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"chaos: nothing listens on {port}")

    def processes(self):
        return [self.pg, self.redis, *self.auth, self.upstream, *[g["proc"] for g in self.gw]]

    def shutdown(self):
        for p in reversed(self.processes()):
            p.stop(timeout=10)


# ---------------------------------------------------------------------------------------------
# The client: keeps the truth and records every outcome


class Recorder:
    def __init__(self):
        self.events = []  # (t, kind, outcome, status, detail)
        self.lock = threading.Lock()
        # Revoked tokens: (token, acknowledged_at, why).
        self.revoked = []
        self.violations = []
        # Gateway request latencies: (t, seconds).
        self.latencies = []

    def add(self, kind, outcome, status=None, detail=""):
        self.events.append((now(), kind, outcome, status, detail))

    def revoke(self, token, why):
        with self.lock:
            self.revoked.append((token, now(), why))
            if len(self.revoked) > 400:
                self.revoked = self.revoked[-400:]


class Http:
    """Persistent connections to a set of equivalent endpoints, failing over as a balancer
    would: on no connection (refused, reset) or, for gateways, a 503, the request goes once to
    the next endpoint."""

    def __init__(self, ports, failover_on_503=False):
        self.ports = ports
        self.conns = {}
        self.turn = random.randrange(len(ports))
        self.failover_on_503 = failover_on_503

    def _conn(self, port):
        c = self.conns.get(port)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            self.conns[port] = c
        return c

    def request(self, method, path, body=None, headers=None, only=None):
        ports = [only] if only is not None else [self.ports[(self.turn + i) % len(self.ports)] for i in range(len(self.ports))]
        self.turn += 1
        last = None
        for attempt, port in enumerate(ports[:2]):
            c = self._conn(port)
            try:
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    c.close()
                    self.conns.pop(port, None)
                result = (r.status, data, r.getheader("retry-after"))
                if r.status == 503 and self.failover_on_503 and attempt == 0 and len(ports) > 1:
                    last = result
                    continue
                return result
            except (OSError, http.client.HTTPException) as e:
                c.close()
                self.conns.pop(port, None)
                last = (None, str(e).encode(), None)
                # A request that may have been applied is not sent again (a POST that reached a
                # replica that then died): only one that found no connection at all.
                if method != "GET" and not isinstance(e, (ConnectionRefusedError,)):
                    return last
        return last


def form(d):
    return urllib.parse.urlencode(d)


FORM = {"content-type": "application/x-www-form-urlencoded"}


class SessionWorker(threading.Thread):
    """Users in turn: log in, call the gateways, refresh in a rotation loop, sometimes log out."""

    def __init__(self, stack, rec, users, stop, pace):
        super().__init__(daemon=True)
        self.stack, self.rec, self.users, self.stop, self.pace = stack, rec, users, stop, pace
        self.auth = Http([stack.lb.port])
        self.gw = Http([g["port"] for g in stack.gw], failover_on_503=True)
        self.rotated_at = {}

    def login(self, user):
        st, body, ra = self.auth.request("POST", "/v1/login", form({"username": user, "password": PASSWORD}), FORM)
        if st is None:
            # No answer (the replica died with the connection): once more, as a client would.
            self.rec.add("login", "retried", None, body[:120].decode(errors="replace"))
            st, body, ra = self.auth.request("POST", "/v1/login", form({"username": user, "password": PASSWORD}), FORM)
        self.rec.add("login", "ok" if st == 200 else ("503" if st == 503 else "fail"), st,
                     "" if st in (200, 503) else body[:200].decode(errors="replace"))
        if st == 503 and not ra:
            self.rec.add("login", "503_without_retry_after", st)
        return json.loads(body) if st == 200 else None

    def run(self):
        while not self.stop.is_set():
            user = random.choice(self.users)
            tokens = self.login(user)
            if tokens is None:
                time.sleep(0.2)
                continue
            rotations = 0
            # A new sign-in every 10 rotations: logins under each fault are counted too.
            while not self.stop.is_set() and rotations < 10:
                for _ in range(5):
                    t0 = now()
                    st, body, _ = self.gw.request("GET", "/api/chaos", headers={"authorization": f"Bearer {tokens['access_token']}"})
                    self.rec.latencies.append((t0, now() - t0))
                    self.rec.add("gateway", "ok" if st == 200 else "fail", st,
                                 "" if st == 200 else body[:160].decode(errors="replace"))
                    time.sleep(self.pace)
                refresh = form({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
                st, body, ra = self.auth.request("POST", "/v1/token", refresh, FORM)
                unanswered = False
                if st is None:
                    # No answer: the rotation may or may not have happened. Once more with the
                    # same token: if it had, that is a reuse, and this session is over.
                    self.rec.add("refresh", "retried", None, body[:120].decode(errors="replace"))
                    unanswered = True
                    st, body, ra = self.auth.request("POST", "/v1/token", refresh, FORM)
                if st == 200:
                    tokens = json.loads(body)
                    self.rotated_at[user] = now()
                    self.rec.add("refresh", "ok", st)
                    rotations += 1
                elif st == 503:
                    self.rec.add("refresh", "503", st)
                    if not ra:
                        self.rec.add("refresh", "503_without_retry_after", st)
                    time.sleep(0.2)
                elif st == 400 and b"invalid_grant" in body and unanswered:
                    # Spent by the request whose answer died with its connection.
                    self.rec.add("refresh", "unanswered", st)
                    break
                elif st == 400 and b"invalid_grant" in body:
                    # The newest refresh token we hold was refused: lost.
                    self.rec.add("refresh", "lost", st, json.dumps({"rotated_at": self.rotated_at.get(user)}))
                    break
                else:
                    self.rec.add("refresh", "fail", st, body[:160].decode(errors="replace"))
                    if st is None:
                        # No answer: the rotation may have happened; this token is unusable.
                        break
                    time.sleep(0.2)
            if not self.stop.is_set() and random.random() < 0.3 and tokens:
                sent = now()
                st, _, _ = self.auth.request("POST", "/v1/logout", None, {"authorization": f"Bearer {tokens['access_token']}"})
                self.rec.add("logout", "ok" if st == 204 else ("503" if st == 503 else "fail"), st, f"{now() - sent:.4f}")
                if st == 204:
                    self.rec.revoke(tokens["access_token"], "logout")


class AdminWorker(threading.Thread):
    """Disables users holding live tokens (each disable revokes them), then enables them."""

    def __init__(self, stack, rec, users, stop):
        super().__init__(daemon=True)
        self.stack, self.rec, self.users, self.stop = stack, rec, users, stop
        self.auth = Http([stack.lb.port])
        self.token = None
        self.ids = {}

    def admin_token(self):
        st, body, _ = self.auth.request("POST", "/v1/login", form({"username": "chaos-admin", "password": self.stack.admin_password}), FORM)
        if st == 200:
            self.token = json.loads(body)["access_token"]
            self.token_at = now()
        return st == 200

    def run(self):
        while not self.stop.is_set():
            if (self.token is None or now() - self.token_at > 600) and not self.admin_token():
                time.sleep(0.5)
                continue
            user = random.choice(self.users)
            st, body, _ = self.auth.request("POST", "/v1/login", form({"username": user, "password": PASSWORD}), FORM)
            if st != 200:
                time.sleep(0.5)
                continue
            victim = json.loads(body)["access_token"]
            sub = json.loads(b64(victim.split(".")[1]))["sub"]
            auth = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
            sent = now()
            st, body, _ = self.auth.request("PATCH", f"/v1/admin/users/{sub}", json.dumps({"disabled": True}), auth)
            self.rec.add("admin", "ok" if st == 200 else ("503" if st == 503 else "fail"), st, f"{now() - sent:.4f}")
            if st == 200:
                self.rec.revoke(victim, "disabled")
            elif st == 401:
                self.token = None
            time.sleep(1.0)
            for _ in range(20):
                st, _, _ = self.auth.request("PATCH", f"/v1/admin/users/{sub}", json.dumps({"disabled": False}), auth)
                if st == 200:
                    break
                time.sleep(0.5)
            time.sleep(1.0)


def b64(s):
    import base64

    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Prober(threading.Thread):
    """Presents every revoked token to each gateway directly, all the time."""

    def __init__(self, stack, rec, stop):
        super().__init__(daemon=True)
        self.stack, self.rec, self.stop = stack, rec, stop
        self.gws = [Http([g["port"]]) for g in stack.gw]

    def run(self):
        while not self.stop.is_set():
            with self.rec.lock:
                revoked = list(self.rec.revoked[-100:])
            for token, acked, why in revoked:
                for i, g in enumerate(self.gws):
                    t = now()
                    st, _, _ = g.request("GET", "/api/probe", headers={"authorization": f"Bearer {token}"})
                    if st == 200:
                        late = t - acked
                        if late > PROPAGATION:
                            self.rec.add("revoked", "accepted", st, json.dumps({"gateway": i + 1, "why": why, "acked": acked, "late": round(late, 2)}))
                        else:
                            self.rec.add("revoked", "accepted_within_propagation", st, f"gateway-{i + 1} {late:.2f}s")
                    elif st is not None:
                        self.rec.add("revoked", "refused", st)
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# Faults


def fault_redis_kill(stack, secs):
    stack.redis.kill()
    t = now()
    time.sleep(0.5)
    stack.redis.start()
    return t


def fault_redis_stop(stack, secs):
    stack.redis.stop()
    t = now()
    time.sleep(secs)
    stack.redis.start()
    return t


def fault_pg_stop(stack, secs):
    pgctl = pg_tool("pg_ctl")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(as_pg + [pgctl, "-D", str(stack.work / "pg"), "-m", "fast", "stop"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.pg.p.wait(timeout=30)
    t = now()
    time.sleep(secs)
    stack.pg.start()
    return t


def fault_auth_kill(stack, secs):
    stack.auth[1].kill()
    t = now()
    time.sleep(secs)
    stack.auth[1].start()
    wait_http(f"http://127.0.0.1:{stack.auth_ports[1]}/readyz")
    return t


def fault_feed_cut(stack, secs):
    stack.gw[0]["feed"].cut()
    t = now()
    time.sleep(secs)
    stack.gw[0]["feed"].restore()
    return t


def fault_jwks_down(stack, secs):
    for g in stack.gw:
        g["jwks"].cut()
    t = now()
    time.sleep(secs)
    for g in stack.gw:
        g["jwks"].restore()
    return t


def fault_gateway_rolling(stack, secs):
    t = now()
    for g in stack.gw:
        g["proc"].stop()
        time.sleep(0.5)
        g["proc"].start()
        wait_http(f"http://127.0.0.1:{g['admin']}/readyz")
        time.sleep(1)
    return t


def fault_clock_ahead(stack, secs):
    """Replica 2 restarted with its clock 20 s ahead (the leeway is 30 s) under libfaketime."""
    if not shutil.which("faketime"):
        return None
    a = stack.auth[1]
    a.stop()
    saved = a.argv
    a.argv = ["faketime", "-f", "+20s"] + saved
    a.start()
    wait_http(f"http://127.0.0.1:{stack.auth_ports[1]}/readyz")
    t = now()
    time.sleep(secs)
    a.stop()
    a.argv = saved
    a.start()
    wait_http(f"http://127.0.0.1:{stack.auth_ports[1]}/readyz")
    return t


FAULTS = [
    ("redis_sigkill", "Redis killed with SIGKILL and started again (AOF everysec)", fault_redis_kill),
    ("redis_stopped", "Redis stopped for {s} s", fault_redis_stop),
    ("postgres_stopped", "PostgreSQL stopped for {s} s", fault_pg_stop),
    ("auth_replica_sigkill", "One auth-service replica killed with SIGKILL ({s} s down, then started)", fault_auth_kill),
    ("feed_cut", "The revocation feed cut between gateway 1 and the auth-service for {s} s", fault_feed_cut),
    ("jwks_down", "The JWKS and metadata unreachable for both gateways for {s} s", fault_jwks_down),
    ("gateway_rolling_restart", "Each gateway restarted in turn (SIGTERM, start, ready)", fault_gateway_rolling),
    ("auth_clock_ahead", "One auth-service replica's clock 20 s ahead (leeway 30 s) for {s} s", fault_clock_ahead),
]


# ---------------------------------------------------------------------------------------------
# Reporting


def window_report(rec, name, title, start, end, recovered_by, kill_at=None):
    ev = [e for e in rec.events if start <= e[0] <= recovered_by]
    def count(kind, outcome=None, status=None):
        return sum(1 for e in ev if e[1] == kind and (outcome is None or e[2] == outcome) and (status is None or e[3] == status))

    def span(kind, bad):
        ts = [e[0] for e in ev if e[1] == kind and e[2] in bad]
        return (max(ts) - min(ts)) if ts else 0.0

    # Recovery: the last failure of any kind in the window, after the fault began.
    failures = [e[0] for e in ev if e[2] in ("fail", "503", "lost")]
    recovery = (max(failures) - start) if failures else 0.0
    accepted = [e for e in ev if e[1] == "revoked" and e[2] == "accepted"]
    accepted_window = [e for e in accepted if kill_at is not None
                       and kill_at - EVERYSEC_WINDOW <= json.loads(e[4])["acked"] <= kill_at]
    lost = [e for e in ev if e[1] == "refresh" and e[2] == "lost"]
    lost_window, lost_beyond = 0, 0
    for e in lost:
        rotated = json.loads(e[4]).get("rotated_at") if e[4] else None
        if kill_at is not None and rotated is not None and kill_at - EVERYSEC_WINDOW <= rotated <= kill_at:
            lost_window += 1
        else:
            lost_beyond += 1
    other5xx = [e for e in ev if isinstance(e[3], int) and e[3] >= 500 and e[3] != 503]
    # Revocations: logouts and admin disables (the admin's re-enabling is not recorded).
    revs = [e for e in ev if e[1] in ("logout", "admin")]
    acked = sorted(float(e[4]) for e in revs if e[2] == "ok" and e[4])
    return {
        "fault": name,
        "title": title,
        "gateway_ok": count("gateway", "ok"),
        "gateway_failed": count("gateway", "fail"),
        "gateway_failed_statuses": sorted({str(e[3]) for e in ev if e[1] == "gateway" and e[2] == "fail"}),
        "logins_ok": count("login", "ok"),
        "logins_503": count("login", "503"),
        "logins_failed": count("login", "fail"),
        "login_outage_s": round(span("login", ("503", "fail")), 2),
        "refresh_ok": count("refresh", "ok"),
        "refresh_503": count("refresh", "503"),
        "refresh_failed": count("refresh", "fail"),
        "refresh_outage_s": round(span("refresh", ("503", "fail")), 2),
        "refresh_lost_within_window": lost_window,
        "refresh_lost": lost_beyond,
        "revoked_probes": count("revoked"),
        "revoked_accepted": len(accepted) - len(accepted_window),
        "revoked_accepted_lost_in_window": len(accepted_window),
        "revoked_accepted_examples": [e[4] for e in accepted[:3]],
        "refresh_unanswered": count("refresh", "unanswered"),
        "retried": count("login", "retried") + count("refresh", "retried"),
        "revoked_accepted_within_propagation": count("revoked", "accepted_within_propagation"),
        "five_xx_other_than_503": len(other5xx),
        "five_xx_examples": [f"{e[1]} {e[3]} {e[4][:100]}" for e in other5xx[:3]],
        "503_without_retry_after": count("login", "503_without_retry_after") + count("refresh", "503_without_retry_after"),
        "revocations_ok": sum(1 for e in revs if e[2] == "ok"),
        "revocations_503": sum(1 for e in revs if e[2] == "503"),
        "revocations_failed": sum(1 for e in revs if e[2] == "fail"),
        "revocation_ack_ms": {"p50": round(acked[len(acked) // 2] * 1000, 1),
                              "max": round(acked[-1] * 1000, 1)} if acked else None,
        "recovery_s": round(recovery, 2),
        "window_s": round(recovered_by - start, 2),
        "fault_s": round(end - start, 2),
    }


def markdown(results):
    out = []
    for r in results:
        out.append(f"#### {r['title']}\n")
        out.append("| Measure | Value |\n| --- | ---: |")
        rows = [
            ("Valid gateway requests: passed / failed", f"{r['gateway_ok']} / **{r['gateway_failed']}**"
             + (f" ({', '.join(r['gateway_failed_statuses'])})" if r['gateway_failed'] else "")),
            ("Logins: passed / 503 with Retry-After / other failures", f"{r['logins_ok']} / {r['logins_503']} / {r['logins_failed']}"),
            ("Logins failing for", f"{r['login_outage_s']} s"),
            ("Refreshes: passed / 503 / other failures", f"{r['refresh_ok']} / {r['refresh_503']} / {r['refresh_failed']}"),
            ("Refreshes failing for", f"{r['refresh_outage_s']} s"),
            ("Revocations (logouts, admin disables): acknowledged / 503 / other failures",
             f"{r['revocations_ok']} / {r['revocations_503']} / {r['revocations_failed']}"),
            ("Time to acknowledge a revocation: median / slowest",
             f"{r['revocation_ack_ms']['p50']} / {r['revocation_ack_ms']['max']} ms" if r['revocation_ack_ms'] else "—"),
            ("Refresh tokens lost (beyond the documented window)", f"**{r['refresh_lost']}**"),
            ("Refresh tokens lost within the everysec window of a SIGKILL", f"{r['refresh_lost_within_window']}"),
            ("Refreshes whose answer was lost with a killed replica (the token spent, the client without the new one)", f"{r['refresh_unanswered']}"),
            ("Requests without an answer, sent once more", f"{r['retried']}"),
            ("Revoked or disabled tokens accepted after acknowledgement + 1 s", f"**{r['revoked_accepted']}** (of {r['revoked_probes']} probes)"),
            ("… accepted within the 1 s propagation bound", f"{r['revoked_accepted_within_propagation']}"),
            ("… accepted because the revocation was in the everysec window of a SIGKILL", f"{r['revoked_accepted_lost_in_window']}"),
            ("5xx other than 503", f"**{r['five_xx_other_than_503']}**"),
            ("503 without Retry-After", f"{r['503_without_retry_after']}"),
            ("Time from the fault to the last failure (recovery)", f"{r['recovery_s']} s"),
        ]
        for k, v in rows:
            out.append(f"| {k} | {v} |")
        out.append("")
    return "\n".join(out)


def soak_tokens(stack, n):
    """`n` users of the soak's own (never disabled or logged out), one token pair each."""
    c = Http([stack.lb.port])
    tokens = []
    for i in range(n):
        name = f"soak-{i}"
        st, body, _ = c.request("POST", "/v1/users", json.dumps({"username": name, "password": PASSWORD}),
                                {"content-type": "application/json"})
        if st not in (201, 409):
            raise SystemExit(f"chaos: registering {name}: {st} {body[:200]}")
        st, body, _ = c.request("POST", "/v1/login", form({"username": name, "password": PASSWORD}), FORM)
        if st != 200:
            raise SystemExit(f"chaos: signing {name} in: {st} {body[:200]}")
        tokens.append(json.loads(body))
    return tokens


def write_tokens(path, pairs):
    """The access tokens, one per line, replacing `path` whole (the load generator reads it again
    when it changes)."""
    tmp = path.with_suffix(".new")
    tmp.write_text("\n".join(p["access_token"] for p in pairs) + "\n")
    tmp.replace(path)


def renew_tokens(stack, pairs, path, every, stop, counts):
    """Every `every` seconds, refreshes each soak user's pair and gives the load generator the
    new access tokens, as clients do inside the tokens' lifetime: so a soak may outlast it, and
    the gateways' cache and revocation list reach their steady state (old tokens expire, new
    ones come). A refresh that fails keeps the pair it had (the next round tries again)."""
    while not stop.wait(every):
        # A fresh connection each round: the last one has long been closed as idle.
        c = Http([stack.lb.port])
        for p in pairs:
            try:
                st, body, _ = c.request("POST", "/v1/token", form({"grant_type": "refresh_token",
                                                                   "refresh_token": p["refresh_token"]}), FORM)
            except Exception as e:  # noqa: BLE001 - counted, tried again next round
                st, body = 0, str(e).encode()
            if st == 200:
                p.update(json.loads(body))
                counts["renewed"] += 1
            else:
                counts["failed"] += 1
                if counts["failed"] <= 5:
                    log(f"soak: renewing a token: {st} {body[:200]!r}")
        write_tokens(path, pairs)
        counts["rounds"] += 1
        log(f"soak: renewed the load generator's tokens ({counts['renewed']} refreshed, {counts['failed']} failed so far)")


def run_loadgen(loadgen, stack, tokens_file, rate, seconds, connections=32, interval=10):
    """Starts the load generator on both gateways; returns the process (JSON lines on stdout)."""
    targets = ",".join(f"127.0.0.1:{g['port']}" for g in stack.gw)
    return subprocess.Popen([str(loadgen), "--targets", targets, "--path", "/api/soak", "--tokens", str(tokens_file),
                             "--connections", str(connections), "--rate", str(rate), "--seconds", str(seconds),
                             "--interval", str(interval)], stdout=subprocess.PIPE, text=True)


def loadgen_lines(p):
    out, _ = p.communicate()
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def gateway_gauges(stack):
    """Per gateway: verified tokens held in its cache (inserted on a miss, less evictions) and
    revocation entries held, from its metrics."""
    out = []
    for g in stack.gw:
        try:
            st, body, _ = Http([g["admin"]]).request("GET", "/metrics")
            text = body.decode()
        except Exception:  # noqa: BLE001 - a gauge we could not read is reported as missing
            out.append(None)
            continue
        def metric(name, missing=0.0):
            for line in text.splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
            return missing
        def mib(name):
            v = metric(name, None)
            return None if v is None else round(v / 2**20, 2)
        misses = metric('gateway_token_cache_lookups_total{result="miss"}')
        evictions = metric("gateway_token_cache_evictions_total")
        out.append({"cache_inserted": int(misses), "cache_evicted": int(evictions),
                    "cache_held": int(misses - evictions),
                    "revocation_entries": int(metric("gateway_revocation_entries")),
                    # jemalloc's view: live bytes (a leak grows these) and the memory it holds;
                    # None if the gateway does not give it (never read as a flat zero).
                    "allocated_mib": mib("gateway_allocator_allocated_bytes"),
                    "active_mib": mib("gateway_allocator_active_bytes"),
                    "resident_mib": mib("gateway_allocator_resident_bytes")})
    return out


def slope(pts):
    """Least-squares slope of (seconds, KiB) points, in KiB a minute (None under three points)."""
    if len(pts) < 3:
        return None
    mt = statistics.mean(t for t, _ in pts)
    mm = statistics.mean(m for _, m in pts)
    var = sum((t - mt) ** 2 for t, _ in pts)
    return round(sum((t - mt) * (m - mm) for t, m in pts) / var * 60, 1) if var else 0.0


# A rate is held if every 5 s interval after the first reaches 98% of it, nothing fails, and the
# step's p99 stays within this (on a machine where everything shares the cores).
HELD_P99_MS = 50


def open_loop_capacity(loadgen, stack, tokens_file):
    """The highest fixed rate the stack holds, found open-loop: first the closed-loop throughput
    (the median of five 4 s intervals after a warm-up), then 30 s steps at 90%, 80%, ... of it,
    down to 40%, until one is held (HELD_P99_MS). A closed loop overstates what a fixed rate can
    have: requests sent back to back cost less each than the same requests spread out, so 80% of
    the closed-loop figure filled a two-core machine and the generator fell behind. Returns
    (closed-loop rate, capacity, [(step rate, achieved, p99 ms, held)])."""
    lines = loadgen_lines(run_loadgen(loadgen, stack, tokens_file, 0, 24, interval=4))
    closed = round(statistics.median([l["rate"] for l in lines if not l["summary"]][1:]))
    steps = []
    for share in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4):
        rate = round(closed * share)
        lines = loadgen_lines(run_loadgen(loadgen, stack, tokens_file, rate, 30, interval=5))
        intervals = [l for l in lines if not l["summary"]][1:]
        total = lines[-1]
        achieved = min((l["rate"] for l in intervals), default=0)
        p99 = max((l["p99_ms"] for l in intervals), default=float("inf"))
        held = bool(intervals) and achieved >= 0.98 * rate and total["failed"] == 0 and p99 <= HELD_P99_MS
        steps.append((rate, achieved, round(p99, 1), held))
        if held:
            return closed, rate, steps
    return closed, round(closed * 0.4), steps


def soak(stack, rec, seconds, out, workers, loadgen=None):
    """Runs the traffic for `seconds`: latency per 10 s, resident memory of every process every
    5 s, errors; the memory slope of each process over the second half; a plot beside.

    With `loadgen` (the full run), the stack's capacity is measured first, under the session
    workers' traffic, with 500 users' tokens: the highest fixed rate the stack holds (see
    `open_loop_capacity`). The soak then holds 80% of that rate, open-loop (latency counted from
    when each request was due), beside the session workers, the admin and the prober."""
    capacity = target_rate = closed = None
    search = []
    lg = renewer = None
    renewals = {"rounds": 0, "renewed": 0, "failed": 0}
    stop_renewing = threading.Event()
    if loadgen:
        tokens_file = out / "work" / "soak-tokens.txt"
        pairs = soak_tokens(stack, 500)
        write_tokens(tokens_file, pairs)
        closed, capacity, search = open_loop_capacity(loadgen, stack, tokens_file)
        target_rate = round(capacity * 0.8)
        log(f"soak: capacity {capacity} req/s open-loop ({closed} closed-loop; steps {search}); holding {target_rate} req/s")
        lg = run_loadgen(loadgen, stack, tokens_file, target_rate, seconds)
        renewer = threading.Thread(target=renew_tokens, daemon=True,
                                   args=(stack, pairs, tokens_file, float(os.environ.get("CHAOS_RENEW", ACCESS_TTL / 3)),
                                         stop_renewing, renewals))
        renewer.start()
    start = now()
    gauges_start = gateway_gauges(stack)
    first_event = len(rec.events)
    samples = []  # (t, {name: kib})
    heap = []  # (t, [per gateway: its gauges]), every 30 s
    cpu = []  # (t, {name: CPU seconds used so far}), every 5 s
    names = [p.name for p in stack.processes()]
    while now() - start < seconds:
        t = now() - start
        samples.append((t, {p.name: p.rss_kib() for p in stack.processes()}))
        roots = {p.name: p.p.pid if p.alive() else None for p in stack.processes()}
        roots["client"] = os.getpid()
        if lg:
            roots["loadgen"] = lg.pid
        cpu.append((t, cpu_seconds(roots)))
        if len(samples) % 6 == 1:
            heap.append((round(t, 1), gateway_gauges(stack)))
        time.sleep(5)
    end = now()
    stop_renewing.set()
    if renewer:
        renewer.join()
    gauges_end = gateway_gauges(stack)
    lat = [(t - start, d) for t, d in rec.latencies if start <= t <= end]
    buckets = {}
    for t, d in lat:
        buckets.setdefault(int(t // 10), []).append(d)
    series = []
    for b in sorted(buckets):
        ds = sorted(buckets[b])
        series.append((b * 10 + 5, ds[len(ds) // 2] * 1000, ds[int(len(ds) * 0.99) - 1] * 1000, len(ds) / 10))
    loaded = None
    if lg:
        lines = loadgen_lines(lg)
        intervals = [l for l in lines if not l["summary"]]
        total = lines[-1]
        loaded = {
            "closed_loop_per_s": closed,
            "capacity_search": search,
            "capacity_per_s": capacity,
            "target_per_s": target_rate,
            "achieved_per_s": round((total["ok"] + total["failed"]) / seconds, 1),
            "requests": total["ok"] + total["failed"],
            "failed": total["failed"],
            "failed_by_status": total["failed_by_status"],
            "p50_ms": total["p50_ms"],
            "p99_ms": total["p99_ms"],
            "max_ms": total["max_ms"],
            "p99_ms_per_interval": {"min": min(l["p99_ms"] for l in intervals), "median": statistics.median(l["p99_ms"] for l in intervals),
                                    "max": max(l["p99_ms"] for l in intervals)} if intervals else None,
            "series": [(l["t"] - 5, l["p50_ms"], l["p99_ms"], l["rate"]) for l in intervals],
        }
    ev = rec.events[first_event:]
    errors = [e for e in ev if e[2] in ("fail", "lost", "503", "accepted")]
    load_failed = loaded["failed"] if loaded else 0
    slopes = {}
    for n in names:
        pts = [(t, m[n]) for t, m in samples if m.get(n) is not None and t >= seconds / 2]
        if len(pts) >= 3:
            first = next(m[n] for _, m in samples if m.get(n) is not None)
            slopes[n] = {"kib_per_min": slope(pts), "first_mib": round(first / 1024, 1),
                         "half_mib": round(pts[0][1] / 1024, 1), "last_mib": round(pts[-1][1] / 1024, 1)}
    p99s = [p for _, _, p, _ in series]
    result = {
        "seconds": round(end - start),
        "gateway_requests": len(lat),
        "rate_per_s": round(len(lat) / (end - start), 1),
        "errors": len(errors) + load_failed + renewals["failed"],
        "token_renewals": renewals,
        "error_examples": [f"{e[1]} {e[2]} {e[3]} {e[4][:80]}" for e in errors[:5]]
        + ([f"load generator: {loaded['failed_by_status']}"] if load_failed else []),
        "load": loaded,
        "p99_ms": {"min": round(min(p99s), 2), "median": round(statistics.median(p99s), 2), "max": round(max(p99s), 2)} if p99s else None,
        "memory": slopes,
        "gateways_at_start": gauges_start,
        "gateways_at_end": gauges_end,
        "memory_samples": [(round(t, 1), m) for t, m in samples],
        "gateway_samples": heap,
        # CPU used over the soak, in cores (CPU seconds / wall seconds), per process and overall.
        "cpu_cores": {n: round((cpu[-1][1][n] - cpu[0][1][n]) / (cpu[-1][0] - cpu[0][0]), 2)
                      for n in cpu[0][1] if n in cpu[-1][1]} if len(cpu) > 1 else None,
        "cpu_samples": cpu,
        "gateway_allocated_kib_per_min": [slope([(t, g[i]["allocated_mib"] * 1024) for t, g in heap
                                                 if g[i] and g[i]["allocated_mib"] is not None and t >= seconds / 2])
                                          for i in range(len(stack.gw))],
        "series": series,
    }
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (a, d, b, c) = plt.subplots(4, 1, figsize=(8, 10), sharex=True)
        shown = loaded["series"] if loaded else series
        a.plot([x for x, *_ in shown], [p for _, _, p, _ in shown], label="p99")
        a.plot([x for x, *_ in shown], [m for _, m, _, _ in shown], label="p50")
        a.set_ylabel("gateway latency (ms)")
        a.set_yscale("log")
        if loaded:
            a.set_title(f"{loaded['target_per_s']} req/s open loop (80% of the {loaded['capacity_per_s']}/s the stack held)",
                        fontsize="small")
        a.legend()
        # Who used the cores: each process's CPU per 5 s sample, stacked.
        if len(cpu) > 1:
            who = [n for n in cpu[0][1] if all(n in c_ for _, c_ in cpu)]
            xs = [t for t, _ in cpu[1:]]
            rates = [[(cpu[i][1][n] - cpu[i - 1][1][n]) / (cpu[i][0] - cpu[i - 1][0]) for i in range(1, len(cpu))]
                     for n in who]
            d.stackplot(xs, rates, labels=who)
            d.set_ylabel("CPU (cores)")
            d.legend(fontsize="x-small", ncol=3, loc="lower left")
        for n in names:
            pts = [(t, m[n] / 1024) for t, m in samples if m.get(n) is not None]
            b.plot([t for t, _ in pts], [m for _, m in pts], label=n)
        b.set_ylabel("resident memory (MiB)")
        b.legend(fontsize="small", ncol=2)
        # The gateways' heap as jemalloc sees it: live bytes, and what it holds resident.
        for i, g in enumerate(stack.gw):
            for key, style in (("allocated_mib", "-"), ("resident_mib", ":")):
                pts = [(t, gs[i][key]) for t, gs in heap if gs[i] and gs[i][key] is not None]
                c.plot([t for t, _ in pts], [m for _, m in pts], style, label=f"{g['proc'].name} {key.split('_')[0]}")
        c.set_ylabel("gateway heap (MiB)")
        c.set_xlabel("seconds into the soak")
        c.legend(fontsize="small", ncol=2)
        fig.tight_layout()
        fig.savefig(out / "soak.png", dpi=80)
        result["plot"] = str(out / "soak.png")
    except ImportError:
        log("matplotlib missing: no plot")
    return result


def seed_users(stack, n):
    c = Http([stack.lb.port])
    names = [f"chaos-{i}" for i in range(n)]
    for name in names:
        st, body, _ = c.request("POST", "/v1/users", json.dumps({"username": name, "password": PASSWORD}),
                                {"content-type": "application/json"})
        if st not in (201, 409):
            raise SystemExit(f"chaos: registering {name}: {st} {body[:200]}")
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--fault-seconds", type=float, default=10)
    ap.add_argument("--settle", type=float, default=8)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--pace", type=float, default=0.01)
    ap.add_argument("--only", default="")
    ap.add_argument("--soak", type=float, default=0)
    ap.add_argument("--loadgen", default="", help="the load generator (testkit's loadgen example) the soak holds 80%% of capacity with")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    log("starting the stack")
    stack = Stack(Path(args.bin).resolve(), work, args.fault_seconds)
    results, failed = [], False
    try:
        users = seed_users(stack, 24)
        # The admin disables users of its own: disabling ends every session of a user, which
        # the session workers would otherwise count as lost.
        sessions, victims = users[:20], users[20:]
        rec = Recorder()
        stop = threading.Event()
        threads = [SessionWorker(stack, rec, sessions[i::args.workers] or sessions, stop, args.pace) for i in range(args.workers)]
        threads += [AdminWorker(stack, rec, victims, stop), Prober(stack, rec, stop)]
        for t in threads:
            t.start()
        time.sleep(args.settle)
        base = window_report(rec, "baseline", "Baseline (no fault)", 0, now(), now())
        results.append(base)
        for name, title, fn in FAULTS:
            if args.only and name not in args.only.split(","):
                continue
            secs = args.fault_seconds
            log(f"fault: {name}")
            begin = now()
            at = fn(stack, secs)
            if at is None:
                log(f"{name}: skipped (faketime missing: apt-get install faketime)")
                continue
            end = now()
            time.sleep(args.settle)
            r = window_report(rec, name, title.format(s=int(secs)), begin, end, now(),
                              kill_at=at if name == "redis_sigkill" else None)
            results.append(r)
            log(json.dumps({k: r[k] for k in ("fault", "gateway_failed", "logins_503", "refresh_503", "refresh_lost",
                                              "refresh_lost_within_window", "revoked_accepted", "five_xx_other_than_503",
                                              "recovery_s")}))
        if args.soak:
            log(f"soak: {args.soak:.0f} s")
            soaked = soak(stack, rec, args.soak, out, args.workers, Path(args.loadgen).resolve() if args.loadgen else None)
            (out / "soak.json").write_text(json.dumps(soaked, indent=1))
            log(json.dumps({k: v for k, v in soaked.items() if k not in ("series", "memory_samples", "gateway_samples", "cpu_samples")}))
            if soaked["errors"]:
                failed = True
                log(f"FAILED: the soak saw {soaked['errors']} errors: {soaked['error_examples']}")
        stop.set()
        time.sleep(0.5)
    finally:
        stack.shutdown()
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    for r in results:
        if r["revoked_accepted"] or r["refresh_lost"] or r["five_xx_other_than_503"]:
            failed = True
            log(f"FAILED: {r['fault']}: revoked accepted {r['revoked_accepted']}, refresh tokens lost {r['refresh_lost']}, "
                f"5xx other than 503 {r['five_xx_other_than_503']} {r['five_xx_examples']}")
    log(f"results: {out / 'results.md'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
