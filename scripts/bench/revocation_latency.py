"""Revocation propagation: for each of N sessions, log in, call both gateways (200), log out,
then poll both gateways until each rejects the access token; the latency is measured from the
moment the logout call returned. The logout call's own duration (its acknowledgement) is
reported too. Usage: revocation_latency.py AUTH_URL GW1_URL GW2_URL N"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse
import uuid

auth, gw1, gw2, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
password = "correct horse battery staple"


def conn(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port)


def call(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, r.read()


a, g1, g2 = conn(auth), conn(gw1), conn(gw2)
user = f"bench-{uuid.uuid4().hex[:12]}"
status, _ = call(a, "POST", "/v1/users", json.dumps({"username": user, "password": password}),
                 {"content-type": "application/json"})
assert status == 201, status
form = urllib.parse.urlencode({"username": user, "password": password})
per_gateway, both, logouts = [], [], []
for i in range(n):
    status, body = call(a, "POST", "/v1/login", form, {"content-type": "application/x-www-form-urlencoded"})
    assert status == 200, status
    bearer = {"authorization": "Bearer " + json.loads(body)["access_token"]}
    for g in (g1, g2):
        status, _ = call(g, "GET", "/api/x", headers=bearer)
        assert status == 200, f"before logout: {status}"
    sent = time.perf_counter()
    status, _ = call(a, "POST", "/v1/logout", headers=bearer)
    assert status == 204, status
    t0 = time.perf_counter()
    logouts.append((t0 - sent) * 1000)
    pending = {0: g1, 1: g2}
    done = {}
    while pending:
        for k in list(pending):
            status, _ = call(pending[k], "GET", "/api/x", headers=bearer)
            if status == 401:
                done[k] = time.perf_counter() - t0
                del pending[k]
            else:
                assert status == 200, f"after logout: {status}"
        if time.perf_counter() - t0 > 10:
            sys.exit(f"revocation {i} did not reach the gateways within 10 s")
    per_gateway += [done[0] * 1000, done[1] * 1000]
    both.append(max(done.values()) * 1000)


def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


print(json.dumps({
    "revocations": n,
    "per_gateway_ms": {"p50": round(q(per_gateway, 50), 2), "p99": round(q(per_gateway, 99), 2),
                       "max": round(max(per_gateway), 2), "mean": round(statistics.mean(per_gateway), 2)},
    "both_gateways_ms": {"p50": round(q(both, 50), 2), "p99": round(q(both, 99), 2),
                         "max": round(max(both), 2)},
    "logout_ms": {"p50": round(q(logouts, 50), 2), "p99": round(q(logouts, 99), 2),
                  "max": round(max(logouts), 2)},
}))
