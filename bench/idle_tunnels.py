#!/usr/bin/python3
"""Memory per idle tunnel of a two-gost chain, per process (issue 16).

For each scheme S (e.g. socks5+h2c) starts fresh processes

  server: gost -L S://127.0.0.1:Q
  client: gost -L tcp://127.0.0.1:P/127.0.0.1:SINK -F S://127.0.0.1:Q

and an echo sink, reads both RSS, opens C connections through P (each sends one line, or --payload
bytes, and waits for its echo, so the tunnel is up end to end), waits --settle seconds and reads both RSS again:
(RSS after - RSS before) / C per process and for both. The same measurement as the
"KiB/idle conn" column of bench/run.sh, without iperf3/wrk/nginx, split by process and repeated
--rounds times with fresh processes (the median is reported).

  bench/idle_tunnels.py [--gost PATH] [--schemes socks5+h2c,relay+h2c,relay+tls] [--conns 1000]
                        [--payload BYTES] [--settle 2] [--rounds 1] [--env NAME=VALUE ...] [--json FILE]

Exit status 0, or 1 when a tunnel failed or a gost died. Everything is on 127.0.0.1, every wait is
bounded, and only the processes started here are signalled.
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import helper  # noqa: E402  (bench/helper.py: echo sink, /proc)
from tls_burst import (Gost, free_port, gost_binary, gost_env, raise_nofile,  # noqa: E402
                       stop_process)


async def open_tunnels(port, n, payload, timeout):
    sem = asyncio.Semaphore(64)
    conns, failures = [], []

    async def one(i):
        async with sem:
            msg = b"ping%06d\n" % i
            if payload > len(msg):
                msg += os.urandom((payload - len(msg)) // 2).hex().encode() + b"\n"
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
                conns.append(w)
                w.write(msg)
                await w.drain()
                if await asyncio.wait_for(r.readexactly(len(msg)), timeout) != msg:
                    raise RuntimeError("bad echo")
            except Exception as e:  # noqa: BLE001 - report any failure
                failures.append("%d: %r" % (i, e))

    await asyncio.gather(*(one(i) for i in range(n)))
    return conns, failures


def measure(gost, scheme, sink, n, payload, settle, env, logdir):
    procs = []
    try:
        q = free_port()
        procs.append(Gost([gost, "-L", "%s://127.0.0.1:%d" % (scheme, q)], env,
                          log_path=os.path.join(logdir, scheme + "-server.log")))
        if not procs[0].wait_listening(q):
            raise RuntimeError("server gost did not listen on %d" % q)
        p = free_port()
        procs.append(Gost([gost, "-L", "tcp://127.0.0.1:%d/127.0.0.1:%d" % (p, sink), "-F",
                           "%s://127.0.0.1:%d" % (scheme, q)], env,
                          log_path=os.path.join(logdir, scheme + "-client.log")))
        if not procs[1].wait_listening(p):
            raise RuntimeError("client gost did not listen on %d" % p)
        time.sleep(0.5)
        before = [helper.status_kib(x.pid, "VmRSS") for x in procs]

        async def run():
            conns, failures = await open_tunnels(p, n, payload, 20.0)
            after = None
            if not failures:
                await asyncio.sleep(settle)
                after = [helper.status_kib(x.pid, "VmRSS") for x in procs]
            for w in conns:
                w.close()
            return after, failures

        after, failures = asyncio.run(run())
        if failures:
            raise RuntimeError("%d tunnels failed, first: %s" % (len(failures), failures[0]))
        if any(x.proc.poll() is not None for x in procs):
            raise RuntimeError("a gost exited while holding the tunnels")
        return {"before_kib": before, "after_kib": after,
                "server_kib": (after[0] - before[0]) / float(n),
                "client_kib": (after[1] - before[1]) / float(n),
                "total_kib": (sum(after) - sum(before)) / float(n)}
    finally:
        for x in reversed(procs):
            x.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gost", default=os.environ.get("GOST"))
    ap.add_argument("--schemes", default="socks5+h2c,relay+h2c,relay+tls")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--payload", type=int, default=0,
                    help="bytes each tunnel echoes once before it idles (default: one short line)")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--json", help="write the numbers to this file")
    a = ap.parse_args()

    gost = gost_binary(a.gost)
    env = gost_env(a.env)
    raise_nofile(4 * a.conns + 256)  # ours (client side), and each gost's (inherited)

    logdir = tempfile.mkdtemp(prefix="idle_tunnels-")
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, os.path.join(HERE, "helper.py"), "sink",
                             str(sink_port)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    rc = 0
    result = {"gost": gost, "conns": a.conns, "payload": a.payload, "settle_s": a.settle, "env": a.env, "schemes": {}}
    try:
        if sink.stdout.readline().strip() != b"READY":
            helper.die("echo sink did not start")
        print("gost: %s; %d idle tunnels per scheme (one echo of %d bytes each), fresh processes, "
              "%d round(s), median" % (gost, a.conns, max(a.payload, 11), a.rounds))
        print("%-14s %12s %12s %12s" % ("scheme", "server KiB", "client KiB", "total KiB"))
        for scheme in a.schemes.split(","):
            runs = []
            try:
                for _ in range(a.rounds):
                    runs.append(measure(gost, scheme, sink_port, a.conns, a.payload, a.settle, env, logdir))
            except RuntimeError as e:
                print("%-14s FAILED: %s (logs in %s)" % (scheme, e, logdir))
                rc = 1
                continue
            med = {k: statistics.median(r[k] for r in runs)
                   for k in ("server_kib", "client_kib", "total_kib")}
            result["schemes"][scheme] = dict(med, runs=runs)
            print("%-14s %12.1f %12.1f %12.1f" % (scheme, med["server_kib"], med["client_kib"],
                                                  med["total_kib"]), flush=True)
    finally:
        stop_process(sink)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=2)
                f.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
