#!/usr/bin/python3
"""UDP port forwarding (`-L udp://:U/<echo>`, docs/PROTOCOLS.md "udp: port forwarding"):
request/response datagrams per second and per CPU-second of the gost processes (utime+stime of
the client, and of the chain's server when there is one), for a direct forward and through
relay, relay+ws, socks5 and MASQUE (CONNECT-UDP over HTTP/3) chains. PEERS client sockets each keep one 64-byte request in flight
(a resolver's pattern: one flow per request without keepAlive, one flow per peer with it); the
UDP echo target runs in this process. Loopback only; kills only what it started.

  bench/udp_forward.py GOST_BINARY [SECONDS] [PEERS]
"""
import selectors
import socket
import subprocess
import sys
import threading
import time

from benchlib import cpu_seconds, free_port, wait_bound

GOST = sys.argv[1]
SECS = float(sys.argv[2]) if len(sys.argv) > 2 else 5
PEERS = int(sys.argv[3]) if len(sys.argv) > 3 else 32





def echo_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))

    def run():
        while True:
            try:
                d, a = s.recvfrom(65536)
                s.sendto(d, a)
            except OSError:
                return
    threading.Thread(target=run, daemon=True).start()
    return s


def measure(port, secs):
    sel = selectors.DefaultSelector()
    socks = []
    payload = b"q" * 64
    for _ in range(PEERS):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.setblocking(False)
        sel.register(u, selectors.EVENT_READ)
        socks.append(u)
        u.sendto(payload, ("127.0.0.1", port))
    sent = {u: time.time() for u in socks}
    answered = lost = 0
    end = time.time() + secs
    while time.time() < end:
        for key, _ in sel.select(0.05):
            u = key.fileobj
            try:
                u.recvfrom(65536)
            except OSError:
                continue
            answered += 1
            u.sendto(payload, ("127.0.0.1", port))
            sent[u] = time.time()
        now = time.time()
        for u in socks:  # a request without answer for 1 s: counted lost, sent again
            if now - sent[u] > 1.0:
                lost += 1
                u.sendto(payload, ("127.0.0.1", port))
                sent[u] = now
    for u in socks:
        u.close()
    return answered, lost


def run_case(name, server_scheme, query, client_scheme=None):
    echo = echo_server()
    procs = []
    try:
        chain = []
        if server_scheme:
            sp = free_port()
            scheme, _, squery = server_scheme.partition("?")
            procs.append(subprocess.Popen(
                [GOST, "-L", "%s://127.0.0.1:%d%s" % (scheme, sp, "?" + squery if squery else "")],
                stderr=subprocess.DEVNULL))
            # a QUIC server (http3) is up once its UDP socket is bound
            wait_bound(sp, "udp" if scheme.endswith("http3") else "tcp")
            chain = ["-F", "%s://127.0.0.1:%d" % (client_scheme or scheme, sp)]
        up = free_port(socket.SOCK_DGRAM)
        url = "udp://127.0.0.1:%d/127.0.0.1:%d%s" % (up, echo.getsockname()[1], query)
        procs.append(subprocess.Popen([GOST, "-L", url] + chain, stderr=subprocess.DEVNULL))
        wait_bound(up, "udp")
        measure(up, 0.5)  # warm-up
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.time()
        answered, lost = measure(up, SECS)
        wall = time.time() - t0
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        print("%-28s %9.0f datagrams/s %9.0f per CPU-s  lost %d" %
              (name, answered / wall, answered / cpu if cpu else 0, lost), flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        echo.close()


def main():
    print("%d peers, one 64-byte request in flight each, %.0f s per case" % (PEERS, SECS))
    for name, server, query, *client in (
            ("direct", None, ""),
            ("direct keepAlive", None, "?keepAlive=true"),
            ("relay", "relay", "?keepAlive=true"),
            ("relay, a tunnel per request", "relay", ""),
            ("relay+ws", "relay+ws", "?keepAlive=true"),
            ("socks5", "socks5?udp=true", "?keepAlive=true"),
            ("masque", "masque+http3", "?keepAlive=true", "masque+h3-masque"),
            ("masque, a flow per request", "masque+http3", "", "masque+h3-masque")):
        run_case(name, server, query, *client)


if __name__ == "__main__":
    main()
