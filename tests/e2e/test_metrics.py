"""End-to-end tests of GOST's Prometheus metrics (docs/PROTOCOLS.md "observability: metrics",
issue 10 item 1).

- `-metrics`, the `metrics:` section and GOST_METRICS, and how -O prints them;
- the endpoint: counts and byte totals exact before/after tunnels through an http proxy service
  (small and spliced large tunnels, a failed dial), 401 without/with wrong credentials, 404, bad
  requests answered and survived;
- a real Prometheus (Debian's `prometheus`) scraping us, the series read back through its HTTP
  query API (skipped, saying so, only when the prometheus binary is absent);
- what GOST under-counts or lacks (issue 10 item 5): UDP bytes (socks5 UDP ASSOCIATE, UDP-TUN,
  relay UDP, UDP over HTTP, through a chain) exact; the payload bytes of the multiplexed listeners'
  streams (h2c, http2, mws, grpc, pht); authentication failures as handler errors (http 407, http2,
  socks5, relay); the opt-in `user` label (metrics.userLabel, go-gost/x#35).

Run: /usr/bin/python3 tests/e2e/test_metrics.py <path-to-gost>
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (EchoServer, GostTestCase, basic, connect, free_port, free_ports,  # noqa: E402
                     recv_exact)

LOOPBACK = "127.0.0.1"
PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus"
                                            if os.path.exists("/usr/bin/prometheus") else None)


def http_get(port, path="/metrics", headers=None, method="GET", timeout=10):
    """(status, headers dict (lower-case names), body bytes) of one request on a new connection."""
    s = connect(port, timeout)
    try:
        req = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n" % (method, path, LOOPBACK,
                                                                            port)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        s.sendall(req.encode() + b"\r\n")
        raw = recv_until_close(s, timeout)
    finally:
        s.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, hdrs, body


def dechunk(body):
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2:]
    return out


def recv_until_close(sock, timeout=10.0):
    return gostlib.recv_until_close(sock, timeout)[0]


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """{(name, frozenset(labels.items())): value}, plus {name: (help, type)}."""
    samples, meta = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            meta.setdefault(name, [None, None])[0] = help_text
        elif line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            meta.setdefault(name, [None, None])[1] = typ
        elif line:
            m = SAMPLE.match(line)
            assert m, "bad exposition line %r" % line
            labels = dict(LABEL.findall(m.group(3) or ""))
            samples[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return samples, meta


def value(samples, name, **labels):
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    return sum(found) if found else None


def tunnel(proxy_port, target, payload):
    """One CONNECT tunnel carrying `payload` to an echo server and back; returns the bytes the
    client sent and received on its connection to the proxy."""
    s = connect(proxy_port)
    req = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode()
    s.sendall(req)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += recv_exact(s, 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    s.sendall(payload)
    echoed = recv_exact(s, len(payload), timeout=30)
    assert echoed == payload
    s.shutdown(socket.SHUT_WR)
    rest = recv_until_close(s)
    s.close()
    return len(req) + len(payload), len(head) + len(echoed) + len(rest)


SERIES = {"service": "service-0", "client": LOOPBACK}
COUNTERS = ("gost_service_requests_total", "gost_service_handler_errors_total",
            "gost_service_transfer_input_bytes_total", "gost_service_transfer_output_bytes_total")


def settled(samples):
    """No request in flight and every request finished (start_gost's port probe counts too: one
    connection = one request, as in GOST)."""
    return (value(samples, "gost_service_requests_in_flight", **SERIES) or 0) == 0 and \
        (value(samples, "gost_service_requests_total", **SERIES) or 0) == \
        (value(samples, "gost_service_request_duration_seconds_count", service="service-0") or 0)


def probed(samples):
    """Settled after start_gost's one successful probe of the proxy port (its connection may be
    accepted after the probe returns): the baseline of a test."""
    return settled(samples) and (value(samples, "gost_service_requests_total", **SERIES) or 0) >= 1


def baseline(samples):
    return {name: value(samples, name, **SERIES) or 0 for name in COUNTERS}


def tls_tunnel(proxy_port, target, payload):
    """tunnel() over TLS (an http+tls service), counting the client's raw TCP bytes, which are
    what GOST's metrics count (below TLS)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = connect(proxy_port)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    counts = {"sent": 0, "received": 0}

    def flush():
        data = outgoing.read()
        if data:
            raw.sendall(data)
            counts["sent"] += len(data)

    def feed():
        data = raw.recv(65536)
        counts["received"] += len(data)
        if not data:
            incoming.write_eof()
            raise EOFError("proxy closed the connection")
        incoming.write(data)

    def call(fn, *args):
        while True:
            try:
                r = fn(*args)
                flush()
                return r
            except ssl.SSLWantReadError:
                flush()
                feed()

    def read_exact(n):
        buf = b""
        while len(buf) < n:
            buf += call(tls.read, n - len(buf))
        return buf

    call(tls.do_handshake)
    call(tls.write, ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += read_exact(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    call(tls.write, payload)
    assert read_exact(len(payload)) == payload
    try:
        tls.unwrap()  # close_notify: the tunnel's half-close
    except ssl.SSLWantReadError:
        pass
    flush()
    raw.shutdown(socket.SHUT_WR)
    while True:
        data = raw.recv(65536)
        if not data:
            break
        counts["received"] += len(data)
    raw.close()
    return counts["sent"], counts["received"]


class MetricsConfigTest(GostTestCase):
    """-metrics, the metrics section and GOST_METRICS, as -O prints them
    (docs/PROTOCOLS.md "cli: flags")."""

    def run_o(self, args, env_extra=None):
        env = gostlib.clean_env()
        env.pop("GOST_METRICS", None)
        env.update(env_extra or {})
        cp = subprocess.run([gostlib.GOST_BIN] + args, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=15)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        return cp.stdout.decode()

    def test_flag_printed_yaml_and_json(self):
        args = ["-L", "http://:8080", "-metrics", "user:pass@127.0.0.1:9000?path=/m"]
        out = self.run_o(args + ["-O", "yaml"])
        self.assertTrue(out.endswith("metrics:\n  addr: 127.0.0.1:9000\n  path: /m\n  auth:\n"
                                     "    username: user\n    password: pass\n"), out)
        doc = json.loads(self.run_o(args + ["-O", "json"]))
        self.assertEqual(doc["metrics"], {"addr": "127.0.0.1:9000", "path": "/m",
                                          "auth": {"username": "user", "password": "pass"}})
        out = self.run_o(["-L", "http://:8080", "-metrics", ":9000", "-O", "yaml"])
        self.assertTrue(out.endswith("metrics:\n  addr: :9000\n"), out)

    def test_section_env_and_flag_precedence(self):
        path = self.write_file("gost.yaml", "services:\n- name: s\n  addr: :8080\n  handler:\n"
                               "    type: http\nmetrics:\n  addr: :9100\n  path: /mm\n"
                               "  auther: a1\n")
        doc = json.loads(self.run_o(["-C", path, "-O", "json"]))
        self.assertEqual(doc["metrics"], {"addr": ":9100", "path": "/mm", "auther": "a1"})
        # GOST 3.2.6: GOST_METRICS replaces the whole section with {addr}.
        doc = json.loads(self.run_o(["-C", path, "-O", "json"], {"GOST_METRICS": ":9200"}))
        self.assertEqual(doc["metrics"], {"addr": ":9200"})
        # -metrics wins over both.
        doc = json.loads(self.run_o(["-C", path, "-metrics", ":9300", "-O", "json"],
                                    {"GOST_METRICS": ":9200"}))
        self.assertEqual(doc["metrics"], {"addr": ":9300"})


class Scraping:
    """Scrapes of the endpoint, for GostTestCase classes."""

    def scrape(self, mport, **kw):
        status, hdrs, body = http_get(mport, **kw)
        self.assertEqual(status, 200, body)
        self.assertEqual(hdrs.get("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        return parse_exposition(body.decode())

    def wait_scrape(self, mport, pred, timeout=10):
        deadline = time.time() + timeout
        while True:
            samples, meta = self.scrape(mport)
            if pred(samples) or time.time() > deadline:
                return samples, meta
            time.sleep(0.05)


class MetricsEndpointTest(Scraping, GostTestCase):

    def setUp(self):
        self.echo = self.start_server(EchoServer())

    def start(self, *extra, metrics_arg=None):
        proxy, mport = free_ports(2)
        arg = metrics_arg(mport) if metrics_arg else "%s:%d" % (LOOPBACK, mport)
        self.start_gost("-L", "http://%s:%d" % (LOOPBACK, proxy), "-metrics", arg, *extra,
                        ports=[proxy, mport])
        return proxy, mport

    def check_tunnels(self, mport, base, tunnel_fn, proxy, payloads):
        """Runs one tunnel per payload, then checks the request count and the exact byte totals
        against `base`; returns (samples, meta, bytes sent, bytes received)."""
        sent = received = 0
        for p in payloads:
            s, r = tunnel_fn(proxy, self.echo.addr, p)
            sent += s
            received += r
        want = base["gost_service_requests_total"] + len(payloads)
        samples, meta = self.wait_scrape(mport, lambda sm: settled(sm) and value(
            sm, "gost_service_requests_total", **SERIES) == want)
        self.assertEqual(value(samples, "gost_service_requests_total", **SERIES), want)
        self.assertEqual(value(samples, "gost_service_requests_in_flight", **SERIES), 0)
        self.assertEqual(value(samples, "gost_service_transfer_input_bytes_total", **SERIES),
                         base["gost_service_transfer_input_bytes_total"] + sent)
        self.assertEqual(value(samples, "gost_service_transfer_output_bytes_total", **SERIES),
                         base["gost_service_transfer_output_bytes_total"] + received)
        return samples, meta, sent, received

    def test_counts_and_bytes_exact(self):
        proxy, mport = self.start()
        samples, meta = self.wait_scrape(mport, probed)
        self.assertEqual(value(samples, "gost_services"), 1)
        base = baseline(samples)
        host = socket.gethostname()
        self.assertIn(("gost_services", frozenset({("host", host)})), samples)

        payloads = [b"x" * 100, os.urandom(70000), os.urandom(3 * 1024 * 1024)]
        samples, meta, sent, received = self.check_tunnels(mport, base, tunnel, proxy, payloads)
        want = base["gost_service_requests_total"] + 3
        self.assertEqual(value(samples, "gost_service_handler_errors_total", **SERIES) or 0,
                         base["gost_service_handler_errors_total"])
        self.assertEqual(value(samples, "gost_service_request_duration_seconds_bucket",
                               service="service-0", le="+Inf"), want)
        expected_meta = {
            "gost_services": ["Current number of services", "gauge"],
            "gost_service_requests_total": ["Total number of requests", "counter"],
            "gost_service_requests_in_flight": ["Current in-flight requests", "gauge"],
            "gost_service_request_duration_seconds": ["Distribution of request latencies",
                                                      "histogram"],
            "gost_service_transfer_input_bytes_total": [
                "Total service input data transfer size in bytes", "counter"],
            "gost_service_transfer_output_bytes_total": [
                "Total service output data transfer size in bytes", "counter"],
        }
        for name, m in expected_meta.items():
            self.assertEqual(meta.get(name), m, name)
        les = [dict(ls)["le"] for (n, ls) in samples
               if n == "gost_service_request_duration_seconds_bucket"]
        self.assertEqual(sorted(les, key=lambda x: float(x)),
                         ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
                          "5", "10", "15", "30", "60", "+Inf"])

        # An open tunnel is in flight; a failed dial is a handler error (its 503 counted).
        s = connect(proxy)
        open_req = ("CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.addr).encode()
        s.sendall(open_req)
        recv_exact(s, len(gostlib.RESP_200_CONNECT))
        samples, _ = self.wait_scrape(mport, lambda sm: value(
            sm, "gost_service_requests_in_flight", **SERIES) == 1)
        self.assertEqual(value(samples, "gost_service_requests_in_flight", **SERIES), 1)
        s.close()
        closed = "%s:%d" % (LOOPBACK, free_port())
        bad = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (closed, closed)).encode()
        c = connect(proxy)
        c.sendall(bad)
        reply = recv_until_close(c)
        c.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 503"), reply)
        samples, _ = self.wait_scrape(mport, lambda sm: settled(sm) and value(
            sm, "gost_service_requests_total", **SERIES) == want + 2)
        self.assertEqual(value(samples, "gost_service_handler_errors_total", **SERIES),
                         base["gost_service_handler_errors_total"] + 1)
        self.assertEqual(value(samples, "gost_service_requests_total", **SERIES), want + 2)
        self.assertEqual(value(samples, "gost_service_requests_in_flight", **SERIES), 0)
        self.assertEqual(value(samples, "gost_service_transfer_input_bytes_total", **SERIES),
                         base["gost_service_transfer_input_bytes_total"] + sent + len(bad)
                         + len(open_req))
        self.assertEqual(value(samples, "gost_service_transfer_output_bytes_total", **SERIES),
                         base["gost_service_transfer_output_bytes_total"] + received
                         + len(gostlib.RESP_200_CONNECT) + len(reply))

    def test_sorted_families_and_series(self):
        proxy, mport = self.start()
        tunnel(proxy, self.echo.addr, b"hello")
        self.wait_scrape(mport, lambda sm: settled(sm) and value(
            sm, "gost_service_request_duration_seconds_count") >= 1)
        _, _, body = http_get(mport)
        families = [line.split()[2] for line in body.decode().splitlines()
                    if line.startswith("# HELP")]
        self.assertEqual(families, sorted(families))
        self.assertEqual(families[-1], "gost_services")

    def test_auth_and_paths(self):
        proxy, mport = self.start(metrics_arg=lambda p: "user:pass@%s:%d?path=/m" % (LOOPBACK, p))
        status, hdrs, body = http_get(mport, "/m")
        self.assertEqual((status, hdrs.get("content-length"), body), (401, "0", b""))
        self.assertNotIn("www-authenticate", hdrs)
        status, _, _ = http_get(mport, "/m", {"Authorization": basic("user", "wrong")})
        self.assertEqual(status, 401)
        status, _, _ = http_get(mport, "/m", {"Authorization": "Basic !!!"})
        self.assertEqual(status, 401)
        status, hdrs, body = http_get(mport, "/m", {"Authorization": basic("user", "pass")})
        self.assertEqual(status, 200)
        self.assertIn(b"gost_services{", body)
        # Any method is served (GOST: promhttp behind ServeMux), the query is ignored.
        status, _, _ = http_get(mport, "/m?x=1", {"Authorization": basic("user", "pass")},
                                method="POST")
        self.assertEqual(status, 200)
        # Another path: 404 as Go's ServeMux answers it, before any authentication.
        for path in ("/metrics", "/m/", "/"):
            status, hdrs, body = http_get(mport, path)
            self.assertEqual((status, body), (404, b"404 page not found\n"), path)
            self.assertEqual(hdrs.get("content-type"), "text/plain; charset=utf-8")
            self.assertEqual(hdrs.get("x-content-type-options"), "nosniff")

    def test_keep_alive(self):
        proxy, mport = self.start()
        s = connect(mport)
        reader = gostlib.HTTPResponseReader(s)
        for _ in range(3):
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            code = reader.read_response()[0]
            self.assertEqual(code, 200)
        s.close()

    def test_bad_requests_survived(self):
        proxy, mport = self.start()
        cases = [
            (b"\x00\x01\x02 garbage\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
             b"HTTP/1.1 431"),
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n",
             b"HTTP/1.1 413"),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
             b"HTTP/1.1 400 Bad Request"),
        ]
        for raw, want in cases:
            s = connect(mport)
            try:
                s.sendall(raw)
            except OSError:
                pass
            reply = recv_until_close(s)
            s.close()
            self.assertTrue(reply.startswith(want), (raw[:40], reply[:100]))
        # A truncated request, then a silent connection: closed without a reply; still serving.
        s = connect(mport)
        s.sendall(b"GET /metr")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_until_close(s), b"")
        s.close()
        status, _, _ = http_get(mport)
        self.assertEqual(status, 200)

    def test_config_section_with_auther(self):
        proxy, mport = free_ports(2)
        path = self.write_file("gost.yaml", (
            "services:\n- name: web\n  addr: %s:%d\n  handler:\n    type: http\n"
            "authers:\n- name: a1\n  auths:\n  - username: prom\n    password: secret\n"
            "metrics:\n  addr: %s:%d\n  path: /stats\n  auth:\n    username: other\n"
            "    password: other\n  auther: a1\n") % (LOOPBACK, proxy, LOOPBACK, mport))
        self.start_gost("-C", path, ports=[proxy, mport])
        # The named auther replaces auth (GOST 3.2.6).
        status, _, _ = http_get(mport, "/stats", {"Authorization": basic("other", "other")})
        self.assertEqual(status, 401)
        tunnel(proxy, self.echo.addr, b"abc")
        status, _, body = http_get(mport, "/stats", {"Authorization": basic("prom", "secret")})
        self.assertEqual(status, 200)
        self.assertIn(b'service="web"', body)

    def test_tls_service_counts_raw_bytes(self):
        proxy, mport = free_ports(2)
        self.start_gost("-L", "http+tls://%s:%d" % (LOOPBACK, proxy), "-metrics",
                        "%s:%d" % (LOOPBACK, mport), ports=[proxy, mport])
        base = baseline(self.wait_scrape(mport, probed)[0])
        self.check_tunnels(mport, base, tls_tunnel, proxy, (b"tls" * 10, os.urandom(300000)))

    def test_chain_metrics(self):
        # A chain whose node is down: every attempt is a chain error labelled with the first node;
        # the handler's error is counted too.
        proxy, mport, dead = free_ports(3)
        self.start_gost("-L", "http://%s:%d" % (LOOPBACK, proxy), "-F",
                        "http://%s:%d" % (LOOPBACK, dead), "-metrics", "%s:%d" % (LOOPBACK, mport),
                        ports=[proxy, mport])
        base = baseline(self.wait_scrape(mport, probed)[0])
        c = connect(proxy)
        c.sendall(("CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.addr).encode())
        self.assertTrue(recv_until_close(c).startswith(b"HTTP/1.1 503"))
        c.close()
        samples, meta = self.wait_scrape(mport, lambda sm: value(
            sm, "gost_service_handler_errors_total", **SERIES) ==
            base["gost_service_handler_errors_total"] + 1)
        self.assertEqual(value(samples, "gost_chain_errors_total", chain="chain-0",
                               node="node-0"), 1)
        self.assertEqual(meta["gost_chain_errors_total"], ["Total chain errors", "counter"])
        self.assertIsNone(value(samples, "gost_chain_node_connect_duration_seconds_count"))

        # A working chain: the first node's connect time is observed once per tunnel.
        upstream, front, mport2 = free_ports(3)
        self.start_gost("-L", "http://%s:%d" % (LOOPBACK, upstream), port=upstream, name="up")
        self.start_gost("-L", "http://%s:%d" % (LOOPBACK, front), "-F",
                        "http://%s:%d" % (LOOPBACK, upstream), "-metrics",
                        "%s:%d" % (LOOPBACK, mport2), ports=[front, mport2], name="front")
        tunnel(front, self.echo.addr, b"via chain")
        tunnel(front, self.echo.addr, b"again")
        samples, meta = self.wait_scrape(mport2, lambda sm: value(
            sm, "gost_chain_node_connect_duration_seconds_count") == 2)
        labels = {"chain": "chain-0", "node": "node-0"}
        self.assertEqual(value(samples, "gost_chain_node_connect_duration_seconds_count",
                               **labels), 2)
        self.assertEqual(value(samples, "gost_chain_node_connect_duration_seconds_bucket",
                               le="+Inf", **labels), 2)
        self.assertEqual(meta["gost_chain_node_connect_duration_seconds"],
                         ["Distribution of chain node connect latencies", "histogram"])
        les = [dict(ls)["le"] for (n, ls) in samples
               if n == "gost_chain_node_connect_duration_seconds_bucket"]
        self.assertEqual(les, ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "1.5", "2", "5", "10",
                               "15", "30", "60", "+Inf"])
        self.assertIsNone(value(samples, "gost_chain_errors_total"))

    def test_bind_failure_is_fatal(self):
        busy = socket.socket()
        busy.bind((LOOPBACK, 0))
        busy.listen(1)
        try:
            cp = gostlib.run_gost(["-L", "http://%s:%d" % (LOOPBACK, free_port()), "-metrics",
                                   "%s:%d" % (LOOPBACK, busy.getsockname()[1])], timeout=10)
        finally:
            busy.close()
        self.assertEqual(cp.returncode, 1, cp.stderr)


def socks5_addr(host, port):
    return b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)


def udp_tun_frame(dst, payload):
    """A UDP-TUN frame (docs/PROTOCOLS.md "socks5: UDP-TUN", also "http: UDP"):
    LEN(2) FF ATYP ADDR PORT DATA."""
    return struct.pack(">H", len(payload)) + b"\xff" + dst + payload


def read_head(sock):
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += recv_exact(sock, 1)
    return head


def service_totals(samples, service):
    return {name: value(samples, name, service=service) or 0 for name in COUNTERS}


class MetricsCoverageTest(Scraping, GostTestCase):
    """What GOST's metrics miss, counted here: UDP, multiplexed listeners, auth failures, and the
    opt-in user label."""

    def setUp(self):
        self.echo = self.start_server(EchoServer())
        self.uecho = gostlib.UdpEchoServer()
        self.addCleanup(self.uecho.close)
        self.udst = socks5_addr(LOOPBACK, self.uecho.port)

    def start(self, urls, *extra, metrics_query=""):
        """One gost with a service per URL (a %d for its port); returns (ports, metrics port)."""
        ports = free_ports(len(urls) + 1)
        args = []
        for url, port in zip(urls, ports):
            args += ["-L", url % port]
        args += ["-metrics", "%s:%d%s" % (LOOPBACK, ports[-1], metrics_query)]
        self.start_gost(*(args + list(extra)), ports=ports)
        return ports[:-1], ports[-1]

    def settle(self, mport, service, requests):
        """The scrape once `service` has seen `requests` requests, all finished."""
        def done(sm):
            return (value(sm, "gost_service_requests_in_flight", service=service) or 0) == 0 and \
                (value(sm, "gost_service_requests_total", service=service) or 0) == requests and \
                (value(sm, "gost_service_request_duration_seconds_count", service=service)
                 or 0) == requests
        samples, _ = self.wait_scrape(mport, done)
        self.assertEqual(value(samples, "gost_service_requests_total", service=service) or 0,
                         requests)
        self.assertEqual(value(samples, "gost_service_requests_in_flight", service=service) or 0,
                         0)
        return samples

    def baselines(self, mport, services, probed_too=True):
        """Totals per service after start_gost's port probes (one request each, when the
        listener yields the probe's connection as one)."""
        want = 1 if probed_too else 0
        samples = {}
        for svc in services:
            samples = self.settle(mport, svc, want)
        return {svc: service_totals(samples, svc) for svc in services}

    def assert_bytes(self, samples, service, base, sent, received, requests=1):
        got = service_totals(samples, service)
        self.assertEqual(got["gost_service_requests_total"],
                         base["gost_service_requests_total"] + requests, service)
        self.assertEqual(got["gost_service_transfer_input_bytes_total"],
                         base["gost_service_transfer_input_bytes_total"] + sent, service)
        self.assertEqual(got["gost_service_transfer_output_bytes_total"],
                         base["gost_service_transfer_output_bytes_total"] + received, service)

    # -- UDP (go-gost/gost#533) -----------------------------------------------------------------

    def udp_associate(self, port):
        """A SOCKS5 UDP association with three datagrams to the UDP echo server; returns the
        bytes the client sent and received on both its sockets."""
        s = connect(port)
        s.sendall(b"\x05\x01\x00")
        self.assertEqual(recv_exact(s, 2), b"\x05\x00")
        req = b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00"
        s.sendall(req)
        reply = recv_exact(s, 10)
        self.assertEqual(reply[:4], b"\x05\x00\x00\x01", reply)
        uport = struct.unpack(">H", reply[8:10])[0]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((LOOPBACK, 0))
        u.settimeout(5)
        sent, received = 3 + len(req), 2 + len(reply)
        try:
            for payload in (b"abc", os.urandom(1000), os.urandom(3000)):
                d = b"\x00\x00\x00" + self.udst + payload
                u.sendto(d, (LOOPBACK, uport))
                sent += len(d)
                r, _ = u.recvfrom(65536)
                self.assertEqual(r, b"\x00\x00\x00" + self.udst + b"echo:" + payload)
                received += len(r)
        finally:
            u.close()
            s.close()
        return sent, received

    def test_socks5_udp_associate_bytes_exact(self):
        (direct, front), mport = self.start(["socks5://127.0.0.1:%d?udp=true",
                                             "socks5://127.0.0.1:%d?udp=true"])
        # service-1 reaches its UDP targets through a chain: the other service, over UDP-TUN.
        (chained,), mport2 = self.start(["socks5://127.0.0.1:%d?udp=true"], "-F",
                                        "socks5://127.0.0.1:%d" % front)
        for port, m, svc in ((direct, mport, "service-0"), (chained, mport2, "service-0")):
            base = self.baselines(m, [svc])[svc]
            sent, received = self.udp_associate(port)
            samples = self.settle(m, svc, base["gost_service_requests_total"] + 1)
            self.assert_bytes(samples, svc, base, sent, received)
        # The chain's hop, too, counted the UDP-TUN stream it served (a TCP connection).
        samples = self.settle(mport, "service-1", 2)
        self.assertGreater(value(samples, "gost_service_transfer_input_bytes_total",
                                 service="service-1"), 3 + 10 + 3 * 10 + 4003)

    def test_udp_over_tcp_paths_bytes_exact(self):
        """socks5 UDP-TUN, relay UDP CONNECT and UDP over HTTP: datagrams framed on the client's
        connection, every byte of it counted."""
        import test_relay
        (tun, relay, http), mport = self.start(["socks5://127.0.0.1:%d?udp=true",
                                                "relay://127.0.0.1:%d",
                                                "http://127.0.0.1:%d?udp=true"])
        services = ["service-0", "service-1", "service-2"]
        base = self.baselines(mport, services)
        payloads = (b"abc", os.urandom(1000), os.urandom(3000))
        counts = {}

        # socks5 UDP-TUN, relay mode (docs/PROTOCOLS.md "socks5: UDP-TUN")
        s = connect(tun)
        sent = received = 0
        s.sendall(b"\x05\x01\x00" + b"\x05\xf3\x00\x01\x00\x00\x00\x00\x00\x00")
        reply = recv_exact(s, 2 + 4)
        n = {1: 4, 4: 16}[reply[5]]
        reply += recv_exact(s, n + 2)
        self.assertEqual(reply[2:4], b"\x05\x00", reply)
        sent, received = 13, len(reply)
        for p in payloads:
            f = udp_tun_frame(self.udst, p)
            s.sendall(f)
            sent += len(f)
            want = udp_tun_frame(self.udst, b"echo:" + p)
            self.assertEqual(recv_exact(s, len(want)), want)
            received += len(want)
        s.close()
        counts["service-0"] = (sent, received)

        # relay UDP CONNECT (docs/PROTOCOLS.md "relay: framing"): LEN(2)+DATA frames, the status
        # with the first reply
        req = test_relay.request(0x81, test_relay.f_network(1),
                                 test_relay.f_addr(LOOPBACK, self.uecho.port))
        s = connect(relay)
        s.sendall(req)
        sent, received = len(req), 0
        for i, p in enumerate(payloads):
            f = struct.pack(">H", len(p)) + p
            s.sendall(f)
            sent += len(f)
            want = (test_relay.OK if i == 0 else b"") + struct.pack(">H", len(p) + 5) + \
                b"echo:" + p
            self.assertEqual(recv_exact(s, len(want)), want)
            received += len(want)
        s.close()
        counts["service-1"] = (sent, received)

        # UDP over HTTP (docs/PROTOCOLS.md "http: UDP"): UDP-TUN frames after the 200
        s = connect(http)
        req = b"CONNECT 127.0.0.1:0 HTTP/1.1\r\nHost: 127.0.0.1:0\r\nX-Gost-Protocol: udp\r\n\r\n"
        s.sendall(req)
        head = read_head(s)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        sent, received = len(req), len(head)
        for p in payloads:
            f = udp_tun_frame(self.udst, p)
            s.sendall(f)
            sent += len(f)
            want = udp_tun_frame(self.udst, b"echo:" + p)
            self.assertEqual(recv_exact(s, len(want)), want)
            received += len(want)
        s.close()
        counts["service-2"] = (sent, received)

        for svc in services:
            samples = self.settle(mport, svc, base[svc]["gost_service_requests_total"] + 1)
            self.assert_bytes(samples, svc, base[svc], *counts[svc])

    # -- multiplexed listeners: the payload of each stream ---------------------------------------

    def test_h2c_streams_counted(self):
        from test_h2 import H2Client
        (srv,), mport = self.start(["socks5+h2c://127.0.0.1:%d"])
        c = H2Client(srv)
        sent = received = 0
        try:
            for _ in range(2):
                sid = c.request([(":method", "CONNECT"), (":authority", "127.0.0.1:%d" % srv)])
                self.assertEqual(c.response(sid).get(":status"), "200")
                c.send(sid, b"\x05\x01\x00")
                self.assertEqual(c.recv(sid, 2), b"\x05\x00")
                host, port = self.echo.addr.rsplit(":", 1)
                c.send(sid, b"\x05\x01\x00" + socks5_addr(host, int(port)))
                reply = c.recv(sid, 10)
                self.assertEqual(reply[:4], b"\x05\x00\x00\x01", reply)
                payload = os.urandom(50000)
                c.send(sid, payload[:20000])
                c.send(sid, payload[20000:])
                self.assertEqual(c.recv(sid, len(payload)), payload)
                c.conn.end_stream(sid)
                c.flush()
                c.pump(lambda: sid in c.ended or sid in c.resets)
                sent += 3 + 10 + len(payload)
                received += 2 + 10 + len(payload)
        finally:
            c.close()
        samples = self.settle(mport, "service-0", 2)
        self.assert_bytes(samples, "service-0", service_totals({}, "service-0"), sent, received,
                          requests=2)

    def through_gost_client(self, server_url, client_node, payload_size=200000):
        """A tunnel to the echo server through our client gost (an http proxy whose chain is
        `client_node`) and our server `server_url` (each with a %d for the server's port);
        returns the payload size and the server's scrape once the tunnel is over. (An http
        front, not a port forwarder: the port probe of start_gost must not open a tunnel.)"""
        (srv,), mport = self.start([server_url])
        front = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % front, "-F", client_node % srv, port=front,
                        name="client")
        payload = os.urandom(payload_size)
        tunnel(front, self.echo.addr, payload)
        return len(payload), self.settle(mport, "service-0", 1)

    def assert_payload_counted(self, n, samples):
        # The relay protocol's request (header + address feature) and status come on top.
        got_in = value(samples, "gost_service_transfer_input_bytes_total", service="service-0")
        got_out = value(samples, "gost_service_transfer_output_bytes_total", service="service-0")
        self.assertTrue(n < got_in <= n + 64, (n, got_in))
        self.assertTrue(n < got_out <= n + 64, (n, got_out))

    def test_mws_streams_counted(self):
        self.assert_payload_counted(*self.through_gost_client("relay+mws://127.0.0.1:%d",
                                                              "relay+mws://127.0.0.1:%d"))

    def test_grpc_streams_counted(self):
        self.assert_payload_counted(*self.through_gost_client(
            "relay+grpc://127.0.0.1:%d?grpcInsecure=true",
            "relay+grpc://127.0.0.1:%d?grpcInsecure=true"))

    def test_pht_streams_counted(self):
        paths = "?authorizePath=/authorize&pushPath=/push&pullPath=/pull"
        self.assert_payload_counted(*self.through_gost_client(
            "relay+pht://127.0.0.1:%d" + paths, "relay+pht://127.0.0.1:%d" + paths, 100000))

    # -- authentication failures are handler errors ----------------------------------------------

    def test_auth_failures_are_handler_errors(self):
        import test_relay
        from test_h2 import H2Client
        (http, socks, relay, h2), mport = self.start(["http://u:p@127.0.0.1:%d",
                                                      "socks5://u:p@127.0.0.1:%d?notls=true",
                                                      "relay://u:p@127.0.0.1:%d",
                                                      "http2://u:p@127.0.0.1:%d"])
        base = self.baselines(mport, ["service-0", "service-1", "service-2"])
        base["service-3"] = self.baselines(mport, ["service-3"], probed_too=False)["service-3"]

        c = connect(http)
        c.sendall(b"CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.addr.encode())
        self.assertTrue(read_head(c).startswith(b"HTTP/1.1 407"))
        c.close()

        c = connect(socks)
        c.sendall(b"\x05\x01\x02")
        self.assertEqual(recv_exact(c, 2), b"\x05\x02")
        c.sendall(b"\x01\x01u\x05wrong")
        self.assertEqual(recv_exact(c, 2)[1:], b"\x01")
        recv_until_close(c)
        c.close()

        c = connect(relay)
        echo_port = int(self.echo.addr.rsplit(":", 1)[1])
        c.sendall(test_relay.request(1, test_relay.f_auth(b"u", b"wrong"),
                                     test_relay.f_addr(LOOPBACK, echo_port)))
        self.assertEqual(recv_exact(c, 4), test_relay.UNAUTHORIZED)
        c.close()

        # http2: the 407 on one stream; an authenticated tunnel on another, its payload counted
        hc = H2Client(h2, tls=True)
        try:
            base_h2 = [(":method", "CONNECT"), (":authority", self.echo.addr)]
            sid = hc.request(base_h2)
            self.assertEqual(hc.response(sid).get(":status"), "407")
            sid = hc.request(base_h2 + [("proxy-authorization", basic("u", "p"))])
            self.assertEqual(hc.response(sid).get(":status"), "200")
            payload = os.urandom(30000)
            hc.send(sid, payload)
            self.assertEqual(hc.recv(sid, len(payload)), payload)
            hc.conn.end_stream(sid)
            hc.flush()
            hc.pump(lambda: sid in hc.ended or sid in hc.resets)
        finally:
            hc.close()

        for svc in ("service-0", "service-1", "service-2"):
            samples = self.settle(mport, svc, base[svc]["gost_service_requests_total"] + 1)
            self.assertEqual(value(samples, "gost_service_handler_errors_total", service=svc),
                             base[svc]["gost_service_handler_errors_total"] + 1, svc)
        samples = self.settle(mport, "service-3", 2)
        self.assertEqual(value(samples, "gost_service_handler_errors_total", service="service-3"),
                         1)
        self.assert_bytes(samples, "service-3", base["service-3"], len(payload), len(payload),
                          requests=2)

    # -- the user label (metrics.userLabel, go-gost/x#35) ----------------------------------------

    def auth_tunnel(self, port, payload, user=None, password=None, keep_open=False):
        s = connect(port)
        req = b"CONNECT %s HTTP/1.1\r\nHost: x\r\n" % self.echo.addr.encode()
        if user is not None:
            req += b"Proxy-Authorization: %s\r\n" % basic(user, password).encode()
        req += b"\r\n"
        s.sendall(req)
        head = read_head(s)
        if not head.startswith(b"HTTP/1.1 200"):
            s.close()
            return head, len(req), len(head)
        s.sendall(payload)
        self.assertEqual(recv_exact(s, len(payload)), payload)
        if keep_open:
            return s, len(req) + len(payload), len(head) + len(payload)
        s.shutdown(socket.SHUT_WR)
        rest = recv_until_close(s)
        s.close()
        return head, len(req) + len(payload), len(head) + len(payload) + len(rest)

    def test_user_label(self):
        proxy, mport = free_ports(2)
        path = self.write_file("gost.yaml", (
            "services:\n- name: web\n  addr: 127.0.0.1:%d\n  handler:\n    type: http\n"
            "    auther: users\n"
            "authers:\n- name: users\n  auths:\n  - username: alice\n    password: a\n"
            "  - username: bob\n    password: b\n"
            "metrics:\n  addr: 127.0.0.1:%d\n  userLabel: true\n") % (proxy, mport))
        self.start_gost("-C", path, ports=[proxy, mport])
        base = self.settle(mport, "web", 1)  # the port probe: no user
        nobody = {"service": "web", "client": LOOPBACK, "user": ""}
        self.assertEqual(value(base, "gost_service_requests_total", **nobody), 1)

        # An open tunnel is in flight under its user, its bytes visible while it runs.
        s, sent_open, received_open = self.auth_tunnel(proxy, b"x" * 1000, "alice", "a",
                                                       keep_open=True)
        alice = {"service": "web", "client": LOOPBACK, "user": "alice"}
        # The output count is added once the write to the client has completed, which the
        # client may see before the worker has run that completion: wait for both counts.
        samples, _ = self.wait_scrape(mport, lambda sm: value(
            sm, "gost_service_requests_in_flight", **alice) == 1 and value(
            sm, "gost_service_transfer_input_bytes_total", **alice) == sent_open and value(
            sm, "gost_service_transfer_output_bytes_total", **alice) == received_open)
        self.assertEqual(value(samples, "gost_service_requests_in_flight", **alice), 1)
        self.assertEqual(value(samples, "gost_service_transfer_output_bytes_total", **alice),
                         received_open)
        s.shutdown(socket.SHUT_WR)
        received_open += len(recv_until_close(s))
        s.close()

        _, sent_a, received_a = self.auth_tunnel(proxy, os.urandom(70000), "alice", "a")
        _, sent_b, received_b = self.auth_tunnel(proxy, b"bob's", "bob", "b")
        head, sent_407, received_407 = self.auth_tunnel(proxy, b"", "alice", "wrong")
        self.assertTrue(head.startswith(b"HTTP/1.1 407"), head)
        samples = self.settle(mport, "web", 5)
        bob = dict(alice, user="bob")
        self.assertEqual(value(samples, "gost_service_requests_total", **alice), 2)
        self.assertEqual(value(samples, "gost_service_transfer_input_bytes_total", **alice),
                         sent_open + sent_a)
        self.assertEqual(value(samples, "gost_service_transfer_output_bytes_total", **alice),
                         received_open + received_a)
        self.assertEqual(value(samples, "gost_service_requests_total", **bob), 1)
        self.assertEqual(value(samples, "gost_service_transfer_input_bytes_total", **bob), sent_b)
        self.assertEqual(value(samples, "gost_service_transfer_output_bytes_total", **bob),
                         received_b)
        # The failed attempt: no user, a handler error.
        self.assertEqual(value(samples, "gost_service_requests_total", **nobody), 2)
        self.assertEqual(value(samples, "gost_service_handler_errors_total", **nobody), 1)
        self.assertIsNone(value(samples, "gost_service_handler_errors_total", **alice))
        self.assertEqual(value(samples, "gost_service_transfer_input_bytes_total", **nobody),
                         base_input(base, nobody) + sent_407)
        # Every per-client series has the label; the others do not.
        for (name, labels), _ in samples.items():
            keys = {k for k, _ in labels}
            per_client = "client" in keys
            self.assertEqual("user" in keys, per_client, (name, labels))

    def test_no_user_label_by_default(self):
        (proxy,), mport = self.start(["http://alice:a@127.0.0.1:%d"])
        self.auth_tunnel(proxy, b"hello", "alice", "a")
        samples = self.settle(mport, "service-0", 2)
        self.assertFalse([k for k in samples if any(n == "user" for n, _ in k[1])])
        self.assertEqual(value(samples, "gost_service_requests_total", **SERIES), 2)
        # -metrics ...?userLabel=true turns it on from the command line.
        (proxy,), mport = self.start(["http://alice:a@127.0.0.1:%d"],
                                     metrics_query="?userLabel=true")
        self.auth_tunnel(proxy, b"hello", "alice", "a")
        samples = self.settle(mport, "service-0", 2)
        self.assertEqual(value(samples, "gost_service_requests_total", user="alice",
                               **SERIES), 1)
        self.assertEqual(value(samples, "gost_service_requests_total", user="", **SERIES), 1)


def base_input(samples, labels):
    return value(samples, "gost_service_transfer_input_bytes_total", **labels) or 0


@unittest.skipIf(PROMETHEUS is None, "prometheus is not installed (Debian package prometheus; "
                 "scripts/setup.sh installs it): the real-Prometheus scrape test is skipped")
class PrometheusScrapeTest(GostTestCase):
    """A real Prometheus scrapes us; the series are read back through its query API."""

    def setUp(self):
        self.echo = self.start_server(EchoServer())
        self.tmp = tempfile.mkdtemp(prefix="gost-prom-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start_prometheus(self, target_port, user, password):
        port = free_port()
        cfg = os.path.join(self.tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n- job_name: gost\n  scrape_interval: 1s\n"
                    "  metrics_path: /metrics\n"
                    "  basic_auth:\n    username: %s\n    password: %s\n"
                    "  static_configs:\n  - targets: ['%s:%d']\n"
                    % (user, password, LOOPBACK, target_port))
        log = open(os.path.join(self.tmp, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(
                self.tmp, "data"), "--web.listen-address=%s:%d" % (LOOPBACK, port),
             "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.tmp)

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.addCleanup(stop)
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                self.fail("prometheus exited: %s" % self.prom_log())
            try:
                with urllib.request.urlopen("http://%s:%d/-/ready" % (LOOPBACK, port),
                                            timeout=2) as r:
                    if r.status == 200:
                        return port
            except OSError:
                pass
            time.sleep(0.2)
        self.fail("prometheus did not become ready: %s" % self.prom_log())

    def prom_log(self):
        try:
            with open(os.path.join(self.tmp, "prometheus.log"), "rb") as f:
                return f.read()[-3000:].decode(errors="replace")
        except OSError:
            return ""

    def query(self, port, expr):
        url = "http://%s:%d/api/v1/query?%s" % (LOOPBACK, port,
                                                urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.loads(r.read())
        self.assertEqual(doc["status"], "success", doc)
        return doc["data"]["result"]

    def wait_value(self, port, expr, want, timeout=30):
        deadline = time.time() + timeout
        result = None
        while time.time() < deadline:
            result = self.query(port, expr)
            if result and float(result[0]["value"][1]) == want:
                return result
            time.sleep(0.5)
        self.fail("%s: want %s, Prometheus has %r\n%s" % (expr, want, result, self.prom_log()))

    def test_prometheus_scrapes_gost(self):
        proxy, mport = free_ports(2)
        self.start_gost("-L", "http://%s:%d" % (LOOPBACK, proxy), "-metrics",
                        "prom:secret@%s:%d" % (LOOPBACK, mport), ports=[proxy, mport])
        auth = {"Authorization": basic("prom", "secret")}
        deadline = time.time() + 10
        while True:
            samples, _ = parse_exposition(http_get(mport, headers=auth)[2].decode())
            if probed(samples) or time.time() > deadline:
                break
            time.sleep(0.05)
        base = baseline(samples)
        sent = received = 0
        for p in (b"ping" * 10, os.urandom(200000)):
            s, r = tunnel(proxy, self.echo.addr, p)
            sent += s
            received += r
        pport = self.start_prometheus(mport, "prom", "secret")
        self.wait_value(pport, 'up{job="gost"}', 1)
        sel = '{job="gost",service="service-0",client="127.0.0.1"}'
        n = base["gost_service_requests_total"] + 2
        sent += base["gost_service_transfer_input_bytes_total"]
        received += base["gost_service_transfer_output_bytes_total"]
        self.wait_value(pport, "gost_service_requests_total" + sel, n)
        self.wait_value(pport, "gost_service_transfer_input_bytes_total" + sel, sent)
        self.wait_value(pport, "gost_service_transfer_output_bytes_total" + sel, received)
        self.wait_value(pport, "gost_service_requests_in_flight" + sel, 0)
        self.wait_value(pport, 'gost_services{job="gost"}', 1)
        self.wait_value(pport, 'gost_service_request_duration_seconds_count{service="service-0"}',
                        n)
        self.wait_value(pport, 'gost_service_request_duration_seconds_bucket{le="+Inf"}', n)
        r = self.query(pport, 'gost_service_requests_total')
        self.assertEqual(r[0]["metric"]["host"], socket.gethostname())
        # More traffic shows up in the next scrapes.
        s, r = tunnel(proxy, self.echo.addr, b"more")
        self.wait_value(pport, "gost_service_requests_total" + sel, n + 1)
        self.wait_value(pport, "gost_service_transfer_input_bytes_total" + sel, sent + s)
        # Prometheus sees no scrape error (its own parser accepted every line).
        with urllib.request.urlopen("http://%s:%d/api/v1/targets" % (LOOPBACK, pport),
                                    timeout=5) as resp:
            targets = json.loads(resp.read())["data"]["activeTargets"]
        self.assertEqual([(t["health"], t["lastError"]) for t in targets], [("up", "")])


if __name__ == "__main__":
    gostlib.main()
