"""Open N keep-alive connections to a server, make one authenticated request on each, then hold
them idle and report the server process's resident memory 3 s and 15 s later (an allocator may
keep freed pages for a while after the burst of requests). Usage: idle_conns.py HOST PORT N PID TOKEN PATH"""
import asyncio
import sys


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def one(host, port, token, path, conns, ok):
    try:
        r, w = await asyncio.open_connection(host, port)
    except OSError:
        return
    w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await r.readexactly(length)
    if head.startswith(b"HTTP/1.1 200"):
        ok.append(1)
    conns.append((r, w))


async def main():
    host, port, n, pid, token, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
    before = rss_kib(pid)
    conns, ok = [], []
    for start in range(0, n, 500):
        await asyncio.gather(*(one(host, port, token, path, conns, ok) for _ in range(start, min(n, start + 500))))
    await asyncio.sleep(3)
    soon = rss_kib(pid)
    await asyncio.sleep(12)
    later = rss_kib(pid)
    print(f"{len(conns)} {len(ok)} {before} {soon} {later}")
    for _, w in conns:
        w.close()


asyncio.run(main())
