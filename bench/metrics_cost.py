#!/usr/bin/python3
"""Cost of metrics on the data path: Gbit per CPU-second of gost (its own utime+stime only)
for a tcp forward, with and without metrics, in alternating rounds (so that drift in the
machine's load hits both alike). Loopback only; kills only what it started.

  bench/metrics_cost.py GOST_BINARY [ROUNDS] [SECONDS]
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

from benchlib import cpu_seconds, free_port

GOST = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
SECS = int(sys.argv[3]) if len(sys.argv) > 3 else 4



def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)



def one(metrics, target):
    port = free_port()
    env = dict(os.environ, GOST_WORKERS="2")
    env.pop("GOST_METRICS", None)
    if metrics:
        env["GOST_METRICS"] = "127.0.0.1:0"
    g = subprocess.Popen([GOST, "-L", "tcp://127.0.0.1:%d/127.0.0.1:%d" % (port, target)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        c0 = cpu_seconds(g.pid)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(SECS), "-J"],
                             capture_output=True, timeout=SECS + 30, check=True).stdout
        c1 = cpu_seconds(g.pid)
        bits = json.loads(out)["end"]["sum_received"]["bytes"] * 8
        return bits / 1e9 / (c1 - c0)
    finally:
        g.terminate()
        g.wait(10)


def main():
    target = free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-p", str(target)], stdout=subprocess.DEVNULL)
    try:
        wait_port(target)
        res = {False: [], True: []}
        for r in range(ROUNDS):
            for m in ((False, True) if r % 2 == 0 else (True, False)):
                res[m].append(one(m, target))
        off, on = statistics.median(res[False]), statistics.median(res[True])
        print(json.dumps({"off": res[False], "on": res[True], "median_off": off,
                          "median_on": on, "cost_pct": (off - on) / off * 100}, indent=1))
    finally:
        srv.terminate()
        srv.wait(10)


main()
