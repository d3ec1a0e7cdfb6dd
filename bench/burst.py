#!/usr/bin/python3
"""Many tunnels opened at once through one transport: is every one answered? (issue 16)

For each transport X it starts an echo target, `gost -L relay+X://127.0.0.1:S` (the server; for
http2 the HTTP/2 proxy mode `-L http2://` with `-F http2://`) and
`gost -L tcp://127.0.0.1:P/127.0.0.1:ECHO -F relay+X://127.0.0.1:S` (the client), opens N
connections to P at once, then each sends SIZE random bytes and reads them back (checksum
compared). It prints per transport: tunnels intact / N, the failures by kind, the time, both
processes' idle RSS, their peak RSS (VmHWM, reset before the burst), their RSS SETTLE seconds
after the last tunnel closed, and for h3, wt and masque the client's UDP sockets then.

  bench/burst.py [--gost PATH] [--n 9000] [--size 65536] [--settle 10] [--json FILE]
                 [--only mws,h2,...] [--keep-log]

Transports: ws wss mws mwss pht phts h2 h2c grpc grpc_insecure http2 h3 wt masque. Without --gost: $GOST,
else build/gost. Exit status: 0 every tunnel of every transport intact, 2 some were lost, 1 the
run itself failed. Everything is on 127.0.0.1, every wait is bounded, and only the processes
started here are signalled. tests/e2e/test_burst.py runs the same code with N = 2,000.
"""
import argparse
import asyncio
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from helper import Sampler, reset_hwm, status_kib  # noqa: E402  (bench/helper.py: /proc)

PHT_PATHS = "authorizePath=/authorize&pushPath=/push&pullPath=/pull"
# transport -> (server -L, client -F) with {port} for the server's port.
TRANSPORTS = {
    "ws": ("relay+ws://127.0.0.1:{port}", "relay+ws://127.0.0.1:{port}"),
    "wss": ("relay+wss://127.0.0.1:{port}", "relay+wss://127.0.0.1:{port}"),
    "mws": ("relay+mws://127.0.0.1:{port}", "relay+mws://127.0.0.1:{port}"),
    "mwss": ("relay+mwss://127.0.0.1:{port}", "relay+mwss://127.0.0.1:{port}"),
    "pht": ("relay+pht://127.0.0.1:{port}", "relay+pht://127.0.0.1:{port}"),
    "phts": ("relay+phts://127.0.0.1:{port}", "relay+phts://127.0.0.1:{port}"),
    "h2": ("relay+h2://127.0.0.1:{port}", "relay+h2://127.0.0.1:{port}"),
    "h2c": ("relay+h2c://127.0.0.1:{port}", "relay+h2c://127.0.0.1:{port}"),
    "grpc": ("relay+grpc://127.0.0.1:{port}", "relay+grpc://127.0.0.1:{port}"),
    "grpc_insecure": ("relay+grpc://127.0.0.1:{port}?grpcInsecure=true",
                      "relay+grpc://127.0.0.1:{port}?grpcInsecure=true"),
    "http2": ("http2://127.0.0.1:{port}", "http2://127.0.0.1:{port}"),
    "h3": ("relay+h3://127.0.0.1:{port}?" + PHT_PATHS, "relay+h3://127.0.0.1:{port}?" + PHT_PATHS),
    "wt": ("relay+wt://127.0.0.1:{port}", "relay+wt://127.0.0.1:{port}"),
    "masque": ("masque+http3://127.0.0.1:{port}", "masque+h3-masque://127.0.0.1:{port}"),
}
MULTIPLEXING = ["mws", "mwss", "h2", "h2c", "grpc", "http2", "h3", "wt", "masque"]
QUIC = ("h3", "wt", "masque")  # the server binds UDP


# ---------------------------------------------------------------- processes and /proc
def free_port(udp=False):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def udp_sockets(pid):
    """The number of UDP sockets the process holds (its fds matched against /proc/net/udp*)."""
    inodes = set()
    for fn in ("/proc/net/udp", "/proc/net/udp6"):
        with open(fn) as f:
            next(f)
            for line in f:
                inodes.add(line.split()[9])
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            n += 1
    return n


def listening(port, udp=False):
    for fn in (("/proc/net/udp", "/proc/net/udp6") if udp else ("/proc/net/tcp", "/proc/net/tcp6")):
        with open(fn) as f:
            next(f)
            for line in f:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and (udp or parts[3] == "0A"):
                    return True
    return False


class Proc:
    def __init__(self, args, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()

    def tail(self, n=5):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


def wait_for(pred, timeout, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        for p in procs:
            if not p.alive():
                raise RuntimeError("process exited: " + p.tail())
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- echo target (own process)
async def echo_main(port):
    async def handle(r, w):
        try:
            while True:
                b = await r.read(65536)
                if not b:
                    break
                w.write(b)
                await w.drain()
        except OSError:
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", port, backlog=16384, limit=1 << 20)
    print("READY", flush=True)
    async with srv:
        await srv.serve_forever()


# ---------------------------------------------------------------- the burst
async def burst(port, n, size, timeout):
    """Opens n connections at once; then each sends `size` random bytes and reads them back.
    Returns (intact, {failure kind: count}, seconds)."""
    payload = os.urandom(size)
    want = hashlib.sha256(payload).digest()
    start = asyncio.Event()
    fails = {}

    async def one():
        w = None
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
            await start.wait()

            async def send():
                w.write(payload)
                await w.drain()

            sender = asyncio.ensure_future(send())
            got = bytearray()
            try:
                while len(got) < size:
                    b = await asyncio.wait_for(r.read(size - len(got)), timeout)
                    if not b:
                        break
                    got += b
            finally:
                await asyncio.wait_for(sender, timeout)
            if len(got) == 0:
                kind = "EOF with 0 bytes"
            elif len(got) < size:
                kind = "EOF after some bytes"
            elif hashlib.sha256(got).digest() != want:
                kind = "corrupted"
            else:
                return True
        except asyncio.TimeoutError:
            kind = "timeout"
        except OSError as e:
            kind = type(e).__name__
        finally:
            if w is not None:
                w.close()
        fails[kind] = fails.get(kind, 0) + 1
        return False

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    await asyncio.sleep(0)
    t0 = time.monotonic()
    start.set()
    res = await asyncio.gather(*tasks)
    return sum(res), fails, time.monotonic() - t0


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def run_transport(gost, name, n, size, settle, tmp, timeout=120.0, udp_wait=0.0, debug=False):
    """One transport: returns a dict of results (raises RuntimeError when the setup fails)."""
    srv_url, cli_url = TRANSPORTS[name]
    echo_port, port, cport = free_port(), free_port(udp=(name in QUIC)), free_port()
    mport = free_port()
    env = dict(os.environ)
    procs = []
    try:
        echo = Proc([sys.executable, os.path.abspath(__file__), "--echo", str(echo_port)],
                    os.path.join(tmp, name + "-echo.log"))
        procs.append(echo)
        # The server's metrics prove that every tunnel went through it, and count its refusals.
        dbg = ["-D"] if debug else []
        server = Proc([gost] + dbg + ["-L", srv_url.format(port=port), "-metrics", "127.0.0.1:%d" % mport],
                      os.path.join(tmp, name + "-server.log"), env)
        procs.append(server)
        client = Proc([gost] + dbg + ["-L", "tcp://127.0.0.1:%d/127.0.0.1:%d" % (cport, echo_port), "-F",
                       cli_url.format(port=port)], os.path.join(tmp, name + "-client.log"), env)
        procs.append(client)
        for p, udp in ((echo_port, False), (port, name in QUIC), (cport, False), (mport, False)):
            if not wait_for(lambda: listening(p, udp), 15, procs):
                raise RuntimeError("nothing listens on %d" % p)
        time.sleep(0.5)
        idle = {"server": status_kib(server.pid, "VmRSS"), "client": status_kib(client.pid, "VmRSS")}
        hwm_ok = reset_hwm(server.pid) and reset_hwm(client.pid)
        with Sampler([server.pid, client.pid]) as s:
            intact, fails, secs = asyncio.run(burst(cport, n, size, timeout))
        for p in (server, client):
            if not p.alive():
                raise RuntimeError("gost died during the burst: " + p.tail())
        peak = {"server": status_kib(server.pid, "VmHWM") if hwm_ok else s.peak[server.pid],
                "client": status_kib(client.pid, "VmHWM") if hwm_ok else s.peak[client.pid]}
        res_metrics = scrape(mport)
        time.sleep(settle)
        after = {"server": status_kib(server.pid, "VmRSS"), "client": status_kib(client.pid, "VmRSS")}
        # Tunnels the server still counts as open then (all should have ended).
        in_flight_after = scrape(mport).get("gost_service_requests_in_flight", 0)
        res = {"transport": name, "n": n, "size": size, "intact": intact, "failures": fails,
               "seconds": round(secs, 2), "idle_kib": idle, "peak_kib": peak,
               "after_kib": after, "settle_s": settle,
               "server_requests": res_metrics.get("gost_service_requests_total", 0),
               "server_refused": res_metrics.get("gost_service_refused_streams_total", 0),
               "server_in_flight_after": in_flight_after}
        if name in QUIC:
            res["client_udp_sockets_after"] = udp_sockets(client.pid)
            if udp_wait > 0:
                time.sleep(udp_wait)
                res["client_udp_sockets_after_wait"] = udp_sockets(client.pid)
                res["udp_wait_s"] = settle + udp_wait
        res["server_warnings"] = sum(1 for line in open(server.log_path, errors="replace")
                                     if '"level":"warning"' in line)
        res["client_warnings"] = sum(1 for line in open(client.log_path, errors="replace")
                                     if '"level":"warning"' in line)
        return res
    finally:
        for p in reversed(procs):
            p.stop()


def scrape(port):
    """The server's metrics: family name -> sum of its samples."""
    import urllib.request
    out = {}
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0) + float(line.rsplit(" ", 1)[1])
    return out


def mib(kib):
    return "%.1f" % (kib / 1024.0) if kib else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gost", default=os.environ.get("GOST"))
    ap.add_argument("--n", type=int, default=9000)
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--udp-wait", type=float, default=0.0,
                    help="h3: also count the client's UDP sockets this much later")
    ap.add_argument("--only", default="")
    ap.add_argument("--json")
    ap.add_argument("--keep-log", action="store_true")
    ap.add_argument("--debug", action="store_true", help="run both gosts with -D")
    ap.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.echo:
        raise_nofile(1 << 20)
        asyncio.run(echo_main(a.echo))
        return 0
    gost = a.gost or os.path.join(ROOT, "build", "gost")
    if not os.access(gost, os.X_OK):
        print("burst: %s is not an executable" % gost, file=sys.stderr)
        return 1
    have = raise_nofile(3 * a.n + 1024)
    if have < 3 * a.n + 1024:
        print("burst: warning: RLIMIT_NOFILE is %d, less than 3 x N" % have, file=sys.stderr)
    names = [x for x in a.only.split(",") if x] or list(TRANSPORTS)
    unknown = [x for x in names if x not in TRANSPORTS]
    if unknown:
        print("burst: unknown transport(s): " + ", ".join(unknown), file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="gost-burst-")
    results, failed = [], False
    print("%-14s %11s %7s  %-28s %s" % ("transport", "intact", "secs",
                                         "RSS MiB srv idle/peak/after", "cli idle/peak/after"))
    for name in names:
        try:
            r = run_transport(gost, name, a.n, a.size, a.settle, tmp, udp_wait=a.udp_wait,
                              debug=a.debug)
        except RuntimeError as e:
            print("%-14s FAILED: %s" % (name, e))
            failed = True
            continue
        results.append(r)
        extra = "  server requests %d" % r["server_requests"]
        if r["server_in_flight_after"]:
            extra += ", still open after %d" % r["server_in_flight_after"]
        if r["server_refused"]:
            extra += ", refused %d" % r["server_refused"]
        if r["failures"]:
            extra += "  lost: " + ", ".join("%s %d" % kv for kv in sorted(r["failures"].items()))
        if "client_udp_sockets_after" in r:
            extra += "  udp sockets after: %d" % r["client_udp_sockets_after"]
            if "client_udp_sockets_after_wait" in r:
                extra += " (%d at %.0fs)" % (r["client_udp_sockets_after_wait"], r["udp_wait_s"])
        i, p, f = r["idle_kib"], r["peak_kib"], r["after_kib"]
        print("%-14s %5d/%-5d %7.1f  %6s/%6s/%6s          %6s/%6s/%6s%s" % (
            name, r["intact"], r["n"], r["seconds"], mib(i["server"]), mib(p["server"]),
            mib(f["server"]), mib(i["client"]), mib(p["client"]), mib(f["client"]), extra),
            flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"gost": gost, "results": results}, f, indent=1)
    if not a.keep_log:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("logs in " + tmp)
    if failed:
        return 1
    return 0 if all(r["intact"] == r["n"] for r in results) else 2


if __name__ == "__main__":
    sys.exit(main())
