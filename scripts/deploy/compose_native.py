"""Runs the topology of docker-compose.yml as native processes (no container engine here) and
walks the compose walkthrough of docs/deployment.md against it.

What comes from the compose file and the Dockerfile, as written: the services and their start
order (`depends_on` with `service_healthy`), every environment variable (interpolated from a
.env made from .env.example), the secrets as files (the *_FILE variables), the Redis command,
the gateway's configuration file, each image's ENV defaults, entrypoint binary and HEALTHCHECK,
and the compose healthchecks of PostgreSQL and Redis.

What stands in for the engine: each service gets a loopback address of its own (127.0.30.x) in
place of its container address and DNS name; `/run/secrets/<name>` becomes a file in the work
directory; binaries come from target/debug; PostgreSQL is a fresh cluster made with initdb, with
POSTGRES_USER, POSTGRES_DB and POSTGRES_PASSWORD_FILE applied as the image would (password
authentication, scram-sha-256). PostgreSQL and Redis listen on free ports (a machine may run its
own on every address). Docker's DNS round-robin over the `auth` alias has no native
equivalent: `auth` is replica 1 here, and replica 2 is checked directly (it serves sessions and
keys made through replica 1).

Usage: python compose_native.py <repo root> <work dir>
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1]).resolve()
WORK = Path(sys.argv[2]).resolve()
BIN = ROOT / "target" / "debug"

HOSTS = {
    "postgres": "127.0.30.2",
    "redis": "127.0.30.3",
    "gateway": "127.0.30.10",
    "auth-1": "127.0.30.11",
    "auth-2": "127.0.30.12",
    "auth": "127.0.30.11",
    "demo": "127.0.30.20",
}
# The compose file's fixed addresses (`ipv4_address`) and subnets (`ipam`), after interpolation
# (EDGE_GATEWAY_IP, EDGE_SUBNET), → their loopback stand-ins; filled in by main().
NATIVE_SUBNET = "127.0.30.0/24"
FIXED = {}


def free_port(ip):
    import socket

    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


# The data stores get free ports: a machine's own PostgreSQL or Redis may listen on every address.
PORTS = {
    "postgres": (5432, free_port(HOSTS["postgres"])),
    "redis": (6379, free_port(HOSTS["redis"])),
}

procs = []


def log(msg):
    print(f"compose-native: {msg}", flush=True)


def interpolate(value, env):
    """Compose variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, $$."""
    if not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)

    def sub(m):
        name, op, default = m.group(1), m.group(2), m.group(3)
        v = env.get(name)
        if op == ":-" and not v:
            return default
        if op == "-" and v is None:
            return default
        return v or ""

    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", sub, value)
    return value.replace("$$", "$")


def localise(value, service, secrets_dir):
    """Container addresses, names and secret paths → their native stand-ins."""
    value = value.replace("/run/secrets/", f"{secrets_dir}/")
    value = value.replace("0.0.0.0", HOSTS[service])
    for addr in sorted(FIXED, key=len, reverse=True):
        value = re.sub(rf"(?<![\d.]){re.escape(addr)}(?!\d)", FIXED[addr], value)
    for name, (port, native) in PORTS.items():
        value = re.sub(rf"(?<=[/@]){re.escape(name)}:{port}\b", f"{HOSTS[name]}:{native}", value)
    for name in sorted(HOSTS, key=len, reverse=True):
        value = re.sub(rf"(?<=[/@]){re.escape(name)}(?=:)", HOSTS[name], value)
    return value


def fixed_addresses(compose, env):
    """Each network's `ipam` subnet → NATIVE_SUBNET, and each service's `ipv4_address` → its
    loopback address, with compose variables interpolated as compose would."""
    out = {}
    for net in (compose.get("networks") or {}).values():
        for cfg in ((net or {}).get("ipam") or {}).get("config") or []:
            if "subnet" in cfg:
                out[interpolate(cfg["subnet"], env)] = NATIVE_SUBNET
    for name, spec in compose["services"].items():
        nets = spec.get("networks")
        for net in (nets.values() if isinstance(nets, dict) else []):
            if isinstance(net, dict) and "ipv4_address" in net:
                out[interpolate(net["ipv4_address"], env)] = HOSTS[name]
    return out


def dockerfile_targets(path):
    """ENV, ENTRYPOINT and HEALTHCHECK of each `FROM … AS <target>` stage."""
    targets, current = {}, None
    text = Path(path).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I)
        if m:
            current = targets.setdefault(m.group(1), {"env": {}, "entrypoint": None, "health": None})
            continue
        if current is None:
            continue
        if line.startswith("ENV "):
            for pair in line[4:].split():
                k, _, v = pair.partition("=")
                current["env"][k] = v
        elif line.startswith("ENTRYPOINT "):
            current["entrypoint"] = json.loads(line[len("ENTRYPOINT "):])
        elif line.startswith("HEALTHCHECK "):
            current["health"] = json.loads(line[line.index("CMD") + 3:].strip())
    return targets


def native_binary(path):
    return str(BIN / Path(path).name)


def start(name, argv, env, log_path):
    out = open(log_path, "w")
    p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    procs.append((name, p))
    return p


def wait_healthy(name, check, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for n, p in procs:
            if n == name and p.poll() is not None:
                raise SystemExit(f"compose-native: {name} exited ({p.returncode}); see {WORK}/{name}.log")
        if check():
            log(f"{name}: healthy")
            return
        time.sleep(0.5)
    raise SystemExit(f"compose-native: {name} did not become healthy; see {WORK}/{name}.log")


def run_ok(argv, env=None, shell=False):
    r = subprocess.run(argv, env=env, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def stop_all():
    for name, p in reversed(procs):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for name, p in reversed(procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def pg_tool(tool):
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    if found:
        return str(found[-1])
    path = shutil.which(tool)
    if not path:
        raise SystemExit(f"compose-native: {tool} not found (Debian: apt-get install postgresql)")
    return path


def as_postgres(argv):
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    return (["runuser", "-u", "postgres", "--"] + argv) if os.geteuid() == 0 else argv


def main():
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    secrets_dir = WORK / "secrets"
    secrets_dir.mkdir()

    # .env, as docs/deployment.md says: from .env.example, with fresh secrets.
    subprocess.run([sys.executable, str(ROOT / "scripts/deploy/compose_env.py"),
                    str(ROOT / ".env.example"), str(WORK / ".env")], check=True)
    env_file = {}
    for line in (WORK / ".env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            env_file[k] = v

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = dockerfile_targets(ROOT / "Dockerfile")
    services = compose["services"]
    FIXED.update(fixed_addresses(compose, env_file))
    log("fixed addresses: " + ", ".join(f"{a} → {n}" for a, n in FIXED.items()))

    for name, spec in compose.get("secrets", {}).items():
        value = env_file[spec["environment"]] if "environment" in spec else Path(ROOT / spec["file"]).read_text()
        path = secrets_dir / name
        path.write_text(value)
        path.chmod(0o644)
    if os.geteuid() == 0:
        shutil.chown(WORK, "postgres")
        os.chmod(WORK, 0o755)

    # Start order: depends_on.
    order, seen = [], set()

    def visit(n):
        if n in seen:
            return
        seen.add(n)
        for dep in services[n].get("depends_on", {}) or {}:
            visit(dep)
        order.append(n)

    for n in services:
        visit(n)
    log("start order: " + " → ".join(order))

    for name in order:
        spec = services[name]
        deps = spec.get("depends_on") or {}
        for dep, cond in (deps.items() if isinstance(deps, dict) else [(d, {}) for d in deps]):
            if (cond or {}).get("condition") not in ("service_healthy", None):
                raise SystemExit(f"compose-native: {name} waits for {dep} in a way this runner does not know")
        env = {k: interpolate(v, env_file) for k, v in (spec.get("environment") or {}).items()}
        ip = HOSTS[name]
        log_path = WORK / f"{name}.log"
        if name == "postgres":
            start_postgres(env, secrets_dir, log_path)
            pg_env = dict(os.environ, PGHOST=ip, PGPORT=str(PORTS["postgres"][1]))
            test = spec["healthcheck"]["test"]
            wait_healthy(name, lambda: run_ok(test[1:], env=pg_env))
            continue
        if name == "redis":
            command = spec["command"]
            script = localise(interpolate(command[-1], env_file), name, secrets_dir)
            script += f" --bind {ip} --port {PORTS['redis'][1]} --dir {WORK / 'redis'}"
            (WORK / "redis").mkdir()
            start(name, command[:-1] + [script], dict(os.environ), log_path)
            test = spec["healthcheck"]["test"]
            check = localise(interpolate(test[1], env_file), name, secrets_dir)
            check = check.replace("redis-cli", f"redis-cli -h {ip} -p {PORTS['redis'][1]}")
            wait_healthy(name, lambda: run_ok(check, shell=True))
            continue
        image = images[spec["build"]["target"]]
        full = {**image["env"], **env}
        for vol in spec.get("volumes", []):
            src, dst = vol.split(":")[:2]
            copy = WORK / f"{name}-{Path(dst).name}"
            copy.write_text(localise((ROOT / src).read_text(), name, secrets_dir))
            full = {k: v.replace(dst, str(copy)) for k, v in full.items()}
        full = {k: localise(v, name, secrets_dir) for k, v in full.items()}
        if "AUTH_DATA_DIR" in full:
            full["AUTH_DATA_DIR"] = str(WORK / f"{name}-data")
        proc_env = dict(os.environ, **full)
        start(name, [native_binary(image["entrypoint"][0])] + image["entrypoint"][1:], proc_env, log_path)
        health = [native_binary(image["health"][0])] + image["health"][1:]
        wait_healthy(name, lambda: run_ok(health, env=proc_env))

    base = f"http://{HOSTS['gateway']}:8080"
    log(f"every service is healthy; the walkthrough against {base}")
    subprocess.run(["bash", str(ROOT / "deploy/compose/walkthrough.sh"), base, env_file["ADMIN_PASSWORD"]],
                   check=True, env=dict(os.environ, ADMIN_USERNAME=env_file.get("ADMIN_USERNAME", "admin")))
    check_replicas(base, env_file)
    check_redis_settings(secrets_dir)
    log("passed")


def start_postgres(env, secrets_dir, log_path):
    data = WORK / "pgdata"
    user, db = env["POSTGRES_USER"], env["POSTGRES_DB"]
    pwfile = env["POSTGRES_PASSWORD_FILE"].replace("/run/secrets/", f"{secrets_dir}/")
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    subprocess.run(as_postgres([pg_tool("initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
                                "--auth=scram-sha-256", "-E", "UTF8"]),
                   check=True, stdout=subprocess.DEVNULL)
    ip, port = HOSTS["postgres"], str(PORTS["postgres"][1])
    start("postgres", as_postgres([pg_tool("postgres"), "-D", str(data), "-h", ip, "-p", port,
                                   "-k", str(data)]), dict(os.environ), log_path)
    for _ in range(60):
        if run_ok([pg_tool("pg_isready"), "-h", ip, "-p", port]):
            break
        time.sleep(0.5)
    # POSTGRES_DB, created by the image's entrypoint on first start.
    password = Path(pwfile).read_text().strip()
    subprocess.run([pg_tool("psql"), "-h", ip, "-p", port, "-U", user, "-d", "postgres", "-qc", f'CREATE DATABASE "{db}"'],
                   check=True, env=dict(os.environ, PGPASSWORD=password))


def get_json(url, data=None, token=None):
    req = urllib.request.Request(url, data=data)
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def check_replicas(base, env_file):
    """Replica 2 (not behind the `auth` name here) shares keys and sessions with replica 1."""
    r2 = f"http://{HOSTS['auth-2']}:8081"
    jwks1 = get_json(f"{base}/.well-known/jwks.json")
    jwks2 = get_json(f"{r2}/.well-known/jwks.json")
    assert sorted(k["kid"] for k in jwks1["keys"]) == sorted(k["kid"] for k in jwks2["keys"]), "replicas publish different keys"
    form = urllib.parse.urlencode({"username": env_file.get("ADMIN_USERNAME", "admin"),
                                   "password": env_file["ADMIN_PASSWORD"]}).encode()
    tokens = get_json(f"{base}/v1/login", data=form)
    pair = get_json(f"{r2}/v1/token", data=urllib.parse.urlencode(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).encode())
    who = get_json(f"{base}/api/whoami", token=pair["access_token"])
    assert who["user_id"], who
    log("replica 2 publishes the same keys and refreshes a session made through replica 1; "
        "the gateway accepts its token")


def check_redis_settings(secrets_dir):
    pw = (secrets_dir / "redis_password").read_text().strip()
    out = subprocess.run(["redis-cli", "-h", HOSTS["redis"], "-p", str(PORTS["redis"][1]), "--no-auth-warning", "-a", pw,
                          "config", "get", "*"], capture_output=True, text=True, check=True).stdout.split("\n")
    conf = dict(zip(out[0::2], out[1::2]))
    assert conf.get("appendonly") == "yes" and conf.get("maxmemory-policy") == "noeviction", conf
    log("redis: appendonly yes, maxmemory-policy noeviction, password required")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
