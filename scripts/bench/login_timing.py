#!/usr/bin/env python3
"""Measures, as an attacker would, whether a failed login's answer time tells an existing account
from an unknown one (user enumeration by timing).

Rounds of three wrong-password logins, in a random order within each round, on one keep-alive
connection: an existing account, a disabled account, an unknown account. The service must have
its throttling off (AUTH_THROTTLE=off), or the counters would soon answer 429 instead.

For each pair (existing vs unknown, disabled vs unknown) it reports the median answer times, how
many rounds the account was slower than the unknown one, and the Wilcoxon signed-rank statistic
as a z score (|z| > 1.96: a difference at the 5% level; no difference leaves z near 0 and the
count near half the rounds).

usage: login_timing.py BASE_URL EXISTING DISABLED PASSWORD [ROUNDS]
"""

import http.client
import json
import math
import random
import statistics
import sys
import time
import urllib.parse


def wilcoxon_z(diffs):
    """z of the Wilcoxon signed-rank test (normal approximation, ties averaged, zeros dropped)."""
    d = [x for x in diffs if x != 0]
    n = len(d)
    if n == 0:
        return 0.0
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    w_plus = sum(r for r, x in zip(ranks, d) if x > 0)
    mean = n * (n + 1) / 4
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    return (w_plus - mean) / sd


def main():
    base, existing, disabled, password = sys.argv[1:5]
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    unknown = "nobody-" + str(random.randrange(10**9))
    names = {"existing": existing, "disabled": disabled, "unknown": unknown}
    wrong = "not the password of anyone here"

    def login(name, pw):
        body = urllib.parse.urlencode({"username": name, "password": pw})
        start = time.perf_counter()
        conn.request("POST", "/v1/login", body, {"content-type": "application/x-www-form-urlencoded"})
        res = conn.getresponse()
        data = res.read()
        elapsed = time.perf_counter() - start
        if res.status != 400 or json.loads(data).get("error") != "invalid_grant":
            sys.exit(f"login_timing: {name} answered {res.status} {data[:200]!r}; is AUTH_THROTTLE=off?")
        return elapsed

    # Warm-up: connections, caches, the hashing threads.
    for _ in range(10):
        for kind, name in names.items():
            login(name, password if kind == "disabled" else wrong)
    times = {k: [] for k in names}
    for _ in range(rounds):
        kinds = list(names)
        random.shuffle(kinds)
        for kind in kinds:
            # The disabled account is tried with its right password: the worst case, where
            # only the disabled flag stands between the attacker and a token.
            times[kind].append(login(names[kind], password if kind == "disabled" else wrong))
    print(f"{rounds} rounds of interleaved failed logins (existing, disabled, unknown account), throttling off")
    print()
    print("| Account | Median ms | p90 ms |")
    print("| --- | ---: | ---: |")
    for kind in names:
        t = sorted(times[kind])
        print(f"| {kind} | {statistics.median(t) * 1000:.2f} | {t[int(len(t) * 0.9)] * 1000:.2f} |")
    print()
    print("| Compared with the unknown account | Slower in rounds | Wilcoxon signed-rank z |")
    print("| --- | ---: | ---: |")
    for kind in ("existing", "disabled"):
        diffs = [a - b for a, b in zip(times[kind], times["unknown"])]
        slower = sum(1 for x in diffs if x > 0)
        print(f"| {kind} | {slower} of {rounds} | {wilcoxon_z(diffs):+.2f} |")


if __name__ == "__main__":
    main()
