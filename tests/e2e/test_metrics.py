"""End-to-end tests of GOST's Prometheus metrics (spec/observability.md §1, issue 10 item 1).

- `-metrics`, the `metrics:` section and GOST_METRICS, and how -O prints them;
- the endpoint: counts and byte totals exact before/after tunnels through an http proxy service
  (small and spliced large tunnels, a failed dial), 401 without/with wrong credentials, 404, bad
  requests answered and survived;
- a real Prometheus (Debian's `prometheus`) scraping us, the series read back through its HTTP
  query API (skipped, saying so, only when the prometheus binary is absent).

Run: /usr/bin/python3 tests/e2e/test_metrics.py <path-to-gost>
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
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
    """-metrics, the metrics section and GOST_METRICS, as -O prints them (cli.md §1.1)."""

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


class MetricsEndpointTest(GostTestCase):

    def setUp(self):
        self.echo = self.start_server(EchoServer())

    def start(self, *extra, metrics_arg=None):
        proxy, mport = free_ports(2)
        arg = metrics_arg(mport) if metrics_arg else "%s:%d" % (LOOPBACK, mport)
        self.start_gost("-L", "http://%s:%d" % (LOOPBACK, proxy), "-metrics", arg, *extra,
                        ports=[proxy, mport])
        return proxy, mport

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
