#!/usr/bin/python3
"""Cost of the controls per connection (issue 17: ≤ 3 %): CPU microseconds of the gost process
that carries them (utime+stime) per connection, for a service with and without a 1,000-entry
bypass and a 1,000-entry admission (none matching: every connection is checked against all of
them; the same configuration as bench/run.sh's *_controls rows), in alternating rounds so that
drift in the machine's load hits both alike. CPU per connection does not depend on how fast the
client can open connections, which is why this separates a few-percent effect that conn/s rows
drown in noise. Cases: `tcp` (a forward service `-L tcp://:P/<target>`) and `relay` (the relay
server of `-L tcp://:P/<target> -F relay://server`; the server's CPU). Each connection sends 1
byte and reads the target's 1-byte answer. Loopback only; kills only what it started.

With MODE `plugins` the controls are GOST's HTTP plugins instead (an admission, a bypass and a
traffic limiter plugin on the service, answered by a small HTTP server in this process: admitted,
not bypassed, no limit), so the figure is what the three questions per connection cost the gost
process (each question is a connection of its own to the plugin; the plugin's CPU is not counted).

  bench/controls_cost.py GOST_BINARY [ROUNDS] [SECONDS] [MODE: lists|plugins]
"""
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import cpu_seconds, free_port, wait_bound

GOST = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
SECS = float(sys.argv[3]) if len(sys.argv) > 3 else 4
MODE = sys.argv[4] if len(sys.argv) > 4 else "lists"
CLIENT_THREADS = 8
PLUGIN_PORT = 0  # set by main() in plugins mode
STATS = {"connections": 0, "questions": 0}  # the plugin's (approximate: unlocked counts)


class PluginHandler(http.server.BaseHTTPRequestHandler):
    """Admission: ok; bypass: not bypassed; traffic limiter: no limit."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        STATS["connections"] += 1

    def do_POST(self):
        STATS["questions"] += 1
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = {"/admission": b'{"ok":true}', "/bypass": b'{"ok":false}',
                "/limiter": b'{"in":0,"out":0}'}.get(self.path, b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def plugin_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PluginHandler)
    srv.daemon_threads = True
    srv.request_queue_size = 1024
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv





def target_server():
    """Accepts, answers 1 byte to the first byte, closes."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)

    def serve(c):
        try:
            if c.recv(1):
                c.sendall(b"y")
        except OSError:
            pass
        c.close()

    def loop():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            serve(c)
    for _ in range(2):
        threading.Thread(target=loop, daemon=True).start()
    return ls


def config(path, service, controls):
    lines = ["services:\n  - " + service + "\n"]
    if controls and MODE == "plugins":
        url = "http://127.0.0.1:%d" % PLUGIN_PORT
        lines.append("bypasses:\n  - name: big\n    plugin: {type: http, addr: %s/bypass}\n" % url)
        lines.append("admissions:\n  - name: big\n    plugin: {type: http, addr: %s/admission}\n"
                     % url)
        lines.append("limiters:\n  - name: lim\n    plugin: {type: http, addr: %s/limiter}\n" % url)
    elif controls:
        m = []
        for i in range(250):
            m += ["host%d.example.com" % i, ".zone%d.net" % i, "10.%d.0.0/16" % i,
                  "*.glob%d.org" % i]
        a = ["192.168.%d.0/24" % (i % 256) if i < 500 else "172.16.%d.%d" % (i // 256, i % 256)
             for i in range(1000)]
        lines.append("bypasses:\n  - name: big\n    matchers: [%s]\n"
                     % ", ".join('"%s"' % x for x in m))
        lines.append("admissions:\n  - name: big\n    matchers: [%s]\n"
                     % ", ".join('"%s"' % x for x in a))
    with open(path, "w") as f:
        f.write("".join(lines))


def hammer(port, secs):
    done = time.time() + secs
    counts = [0] * CLIENT_THREADS

    def run(i):
        while time.time() < done:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"x")
                if s.recv(1) == b"y":
                    counts[i] += 1
                s.close()
            except OSError:
                pass
    ts = [threading.Thread(target=run, args=(i,)) for i in range(CLIENT_THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts)


def one(case, controls, target, tmp):
    procs = []
    try:
        extra = ", bypass: big, admission: big" if controls else ""
        if controls and MODE == "plugins":
            extra += ", limiter: lim"
        path = os.path.join(tmp, "%s_%d.yaml" % (case, controls))
        front = free_port()
        if case == "tcp":
            config(path, '{name: bench, addr: "127.0.0.1:%d"%s, handler: {type: tcp}, '
                   'forwarder: {nodes: [{name: t, addr: "127.0.0.1:%d"}]}}'
                   % (front, extra, target), controls)
            procs.append(subprocess.Popen([GOST, "-C", path], stderr=subprocess.DEVNULL))
            wait_bound(front)
            measured = procs[0]
        else:
            server = free_port()
            config(path, '{name: bench, addr: "127.0.0.1:%d"%s, handler: {type: relay}}'
                   % (server, extra), controls)
            procs.append(subprocess.Popen([GOST, "-C", path], stderr=subprocess.DEVNULL))
            wait_bound(server)
            procs.append(subprocess.Popen(
                [GOST, "-L", "tcp://127.0.0.1:%d/127.0.0.1:%d" % (front, target),
                 "-F", "relay://127.0.0.1:%d" % server], stderr=subprocess.DEVNULL))
            wait_bound(front)
            measured = procs[0]
        hammer(front, 0.5)  # warm-up
        c0 = cpu_seconds(measured.pid)
        n = hammer(front, SECS)
        c1 = cpu_seconds(measured.pid)
        return (c1 - c0) / n * 1e6, n / SECS
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


def main():
    global PLUGIN_PORT
    plugins = plugin_server() if MODE == "plugins" else None
    if plugins:
        PLUGIN_PORT = plugins.server_address[1]
    ls = target_server()
    target = ls.getsockname()[1]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("tcp", "relay"):
            res = {False: [], True: []}
            rates = {False: [], True: []}
            for r in range(ROUNDS):
                for c in ((False, True) if r % 2 == 0 else (True, False)):
                    us, rate = one(case, c, target, tmp)
                    res[c].append(us)
                    rates[c].append(rate)
            off, on = statistics.median(res[False]), statistics.median(res[True])
            out[case] = {"us_per_conn_off": [round(x, 1) for x in res[False]],
                         "us_per_conn_on": [round(x, 1) for x in res[True]],
                         "median_off": round(off, 1), "median_on": round(on, 1),
                         "conn_per_s_median": round(statistics.median(rates[False] + rates[True])),
                         "cost_pct": round((on - off) / off * 100, 1)}
            if MODE == "plugins":
                out[case]["plugin"] = dict(STATS)
            print(json.dumps({"mode": MODE, case: out[case]}), flush=True)
    ls.close()


if __name__ == "__main__":
    main()
