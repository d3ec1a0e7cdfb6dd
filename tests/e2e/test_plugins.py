"""End-to-end tests of GOST's HTTP plugins for admissions, bypasses and hosts (issue 17 §3;
docs/PROTOCOLS.md "config: plugins"): a small plugin server in the test records every JSON body
gost sends and answers as each test wants; real clients (curl, PySocks, raw sockets) see the
result. Failing plugins (slow, 500, garbage, down) leave the service up and decide as GOST does:
an admission refuses, a bypass lets the target through, a hosts lookup maps nothing.

Run: /usr/bin/python3 tests/e2e/test_plugins.py <path-to-gost>
"""

import http.server
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (LOOPBACK, RESP_200_CONNECT, EchoServer, OriginServer, TapProxy, curl,  # noqa: E402
                     free_port, free_ports, recv_exact, run_gost)
from test_controls import RESP_403, connect_from, read_all  # noqa: E402

try:
    import socks  # python3-socks (PySocks)
except ImportError:  # pragma: no cover
    socks = None



def ordered(raw):
    """A JSON object's (key, value) pairs in the order they were sent."""
    return json.loads(raw, object_pairs_hook=lambda pairs: [list(p) for p in pairs])


class _PluginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        with self.server.owner.lock:
            self.server.owner.connections += 1

    def do_POST(self):
        o = self.server.owner
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(min(n, 1 << 16))
        with o.lock:
            o.requests.append((self.path, dict(self.headers), raw))
            mode = o.mode
        if mode == "slow":
            time.sleep(o.delay)
        if mode == "500":
            body, code = b'{"ok": true, "ips": ["127.0.0.1"]}', 500
        elif mode == "garbage":
            body, code = b"this is not json {", 200
        else:
            try:
                req = json.loads(raw)
            except ValueError:
                req = {}
            body, code = json.dumps(o.answer(self.path, req)).encode(), 200
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # gost gave up waiting (the slow mode)
        if mode == "drop_idle":  # closes the connection it left open, as an idle timeout would
            self.close_connection = True


class _PluginHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class PluginServer:
    """Answers POSTs with o.answer(path, request) as JSON (mode "ok"), or misbehaves: "slow"
    (sleeps `delay` first), "500", "garbage" (a 200 that is not JSON)."""

    def __init__(self, answer=None):
        self.lock = threading.Lock()
        self.requests = []
        self.connections = 0  # TCP connections accepted
        self.mode = "ok"
        self.delay = 3.0
        self.answer = answer or (lambda path, req: {"ok": False})
        self.server = _PluginHttpServer((LOOPBACK, 0), _PluginHandler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def url(self, path):
        return "http://%s:%d%s" % (LOOPBACK, self.port, path)

    def bodies(self, path):
        with self.lock:
            return [ordered(raw) for p, _, raw in self.requests if p == path]

    def count(self, path):
        with self.lock:
            return sum(1 for p, _, _ in self.requests if p == path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def connect_request(port, target, source_ip=LOOPBACK):
    s = connect_from(source_ip, port)
    try:
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        return read_all(s)
    finally:
        s.close()


class PluginsTest(gostlib.GostTestCase):

    def setUp(self):
        self.origin = self.start_server(OriginServer())
        self.echo = self.start_server(EchoServer())
        self.plugin = self.start_server(PluginServer())

    def proxy(self, port):
        return "http://127.0.0.1:%d" % port

    # ---- admission ---------------------------------------------------------------------------

    def test_admission_plugin_admits_and_refuses(self):
        port = free_port()
        self.plugin.answer = lambda path, req: {"ok": req.get("addr", "").startswith("127.0.0.1:")}
        cfg = self.write_file("adm.yaml", """
services:
  - {name: proxy, addr: "127.0.0.1:%d", admission: ask, handler: {type: http}}
admissions:
  - name: ask
    whitelist: true          # a plugin replaces the matchers and their mode (GOST)
    matchers: ["10.0.0.0/8"]
    plugin: {type: http, addr: "%s", timeout: 2s, token: secret}
""" % (port, self.plugin.url("/admission")))
        self.start_gost("-C", cfg, port=port)
        # The start-up probe's connection is asked about too: wait for its question first.
        self.assertTrue(gostlib.wait_until(lambda: self.plugin.count("/admission") >= 1))
        # Refused: closed with no byte, the target never dialed.
        self.assertEqual(connect_request(port, self.echo.addr, source_ip="127.0.0.2"), b"")
        time.sleep(0.2)
        self.assertEqual(self.echo.connections, 0, "a refused client dialed the target")
        self.assertEqual(self.plugin.count("/admission"), 2)
        body = self.plugin.bodies("/admission")[-1]
        self.assertEqual([k for k, _ in body], ["service", "network", "addr"])
        d = dict(body)
        self.assertEqual((d["service"], d["network"]), ("proxy", "tcp"))
        self.assertTrue(d["addr"].startswith("127.0.0.2:"), d)
        _, headers, _ = self.plugin.requests[-1]
        self.assertEqual(headers.get("Content-Type"), "application/json")
        self.assertEqual(headers.get("Authorization"), "Bearer secret")
        # Admitted: the proxy works, seen by curl.
        before = self.plugin.count("/admission")
        r = curl(self.origin.url, proxy=self.proxy(port))
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        self.assertEqual(self.plugin.count("/admission"), before + 1)  # once per connection
        s = connect_from("127.0.0.1", port)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.addr).encode())
        self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
        s.sendall(b"ping")
        self.assertEqual(recv_exact(s, 4), b"ping")
        s.close()

    def test_plugin_connections_are_kept_alive(self):
        # Go's http.Client (GOST's plugins) keeps idle connections to the plugin; so do we, per
        # worker. A plugin that closes an idle connection costs no question: the request goes
        # again on a new connection.
        port = free_port()
        self.plugin.answer = lambda path, req: {"ok": True}
        cfg = self.write_file("adm.yaml", """
services:
  - {name: proxy, addr: "127.0.0.1:%d", admission: ask, handler: {type: http}}
admissions:
  - name: ask
    plugin: {type: http, addr: "%s", timeout: 2s}
""" % (port, self.plugin.url("/admission")))
        self.start_gost("-C", cfg, port=port)
        self.assertTrue(gostlib.wait_until(lambda: self.plugin.count("/admission") >= 1))
        for _ in range(20):
            r = curl(self.origin.url, proxy=self.proxy(port))
            self.assertEqual((r.rc, r.http_code), (0, "200"), r)
        self.assertGreaterEqual(self.plugin.count("/admission"), 21)
        self.assertLessEqual(self.plugin.connections, 4, "one connection per question?")
        _, headers, _ = self.plugin.requests[-1]
        self.assertNotEqual(headers.get("Connection", "").lower(), "close", headers)
        self.plugin.mode = "drop_idle"
        before, conns = self.plugin.count("/admission"), self.plugin.connections
        for _ in range(5):
            r = curl(self.origin.url, proxy=self.proxy(port))
            self.assertEqual((r.rc, r.http_code), (0, "200"), r)
            time.sleep(0.05)  # the plugin's close arrives before the next question
        # Each question once (none lost, none sent twice); the first on each worker's kept
        # connection, every later one found its kept connection closed and opened another.
        self.assertEqual(self.plugin.count("/admission"), before + 5)
        self.assertGreaterEqual(self.plugin.connections, conns + 3)

    # ---- bypass on services -----------------------------------------------------------------

    def test_bypass_plugin_on_services(self):
        ph, ps5, pf = free_ports(3)
        blocked = {"blocked.test:80", self.echo.addr}
        self.plugin.answer = lambda path, req: {"ok": req.get("addr") in blocked}
        cfg = self.write_file("byp.yaml", """
services:
  - {name: http, addr: "127.0.0.1:%d", bypass: ask, handler: {type: http, auther: users}}
  - {name: socks5, addr: "127.0.0.1:%d", bypasses: [ask], handler: {type: socks5}}
  - name: fwd
    addr: "127.0.0.1:%d"
    bypass: ask
    handler: {type: tcp}
    listener: {type: tcp}
    forwarder: {nodes: [{name: target, addr: "%s"}]}
authers:
  - name: users
    auths: [{username: u1, password: p1}]
bypasses:
  - name: ask
    whitelist: true          # ignored with a plugin, as in GOST
    plugin: {type: http, addr: "%s", timeout: 2s}
""" % (ph, ps5, pf, self.echo.addr, self.plugin.url("/bypass")))
        # The forwarder is waited for without a probe connection: a probe would be forwarded, and
        # its bypass question could reach the plugin after the one asserted below.
        g = self.start_gost("-C", cfg, ports=[ph, ps5])
        self.assertTrue(gostlib.wait_listening(pf, proc=g.proc), "fwd did not listen on %d" % pf)
        auth = ("--proxy-user", "u1:p1")
        r = curl("http://blocked.test/", proxy=self.proxy(ph), extra=auth)
        self.assertEqual(r.http_code, "403", r)
        body = self.plugin.bodies("/bypass")[-1]
        # GOST's body: every field, empty ones too, in this order; a service tells no host/path.
        self.assertEqual(body, [["network", "tcp"], ["addr", "blocked.test:80"], ["client", "u1"],
                                ["host", ""], ["path", ""]])
        r = curl(self.origin.url, proxy=self.proxy(ph), extra=auth)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        self.assertEqual(dict(self.plugin.bodies("/bypass")[-1])["addr"], self.origin.addr)
        r = curl(self.origin.url, proxy=self.proxy(ph), tunnel=True, extra=auth)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        # SOCKS5: REP 0x02 for a bypassed target, nothing dialed; another target passes.
        if socks is not None:
            c = socks.socksocket()
            c.set_proxy(socks.SOCKS5, "127.0.0.1", ps5)
            c.settimeout(10)
            with self.assertRaises(socks.ProxyError) as e:
                c.connect(("127.0.0.1", self.echo.port))
            c.close()
            self.assertIn("0x02", str(e.exception))
            self.assertEqual(self.plugin.bodies("/bypass")[-1],
                             [["network", "tcp"], ["addr", self.echo.addr], ["client", ""],
                              ["host", ""], ["path", ""]])
            c = socks.socksocket()
            c.set_proxy(socks.SOCKS5, "127.0.0.1", ps5)
            c.settimeout(10)
            c.connect(("127.0.0.1", self.origin.port))
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while self.origin.body not in got:
                d = c.recv(65536)
                if not d:
                    break
                got += d
            self.assertIn(self.origin.body, got)
            c.close()
        # The raw 403 on the wire, and the bypassed echo server never dialed.
        s = connect_from(LOOPBACK, ph)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic dTE6cDE=\r\n\r\n"
                   % self.echo.addr).encode())
        self.assertEqual(read_all(s), RESP_403)
        s.close()
        # Port forwarding to a bypassed target: closed without a byte.
        s = connect_from(LOOPBACK, pf)
        s.sendall(b"ping")
        self.assertEqual(read_all(s), b"")
        s.close()
        time.sleep(0.2)
        self.assertEqual(self.echo.connections, 0, "a bypassed target was dialed")

    def test_bypass_plugin_drops_udp_datagrams(self):
        if socks is None:
            self.skipTest("python3-socks not installed")
        blocked = self.start_server(gostlib.UdpEchoServer())
        allowed = self.start_server(gostlib.UdpEchoServer())
        deny = "127.0.0.1:%d" % blocked.port
        self.plugin.answer = lambda path, req: {"ok": req.get("addr") == deny}
        port = free_port()
        cfg = self.write_file("udp.yaml", """
services:
  - {name: s5, addr: "127.0.0.1:%d", bypass: ask, handler: {type: socks5, metadata: {udp: true}}}
bypasses:
  - {name: ask, plugin: {type: http, addr: "%s", timeout: 2s}}
""" % (port, self.plugin.url("/udp")))
        self.start_gost("-C", cfg, port=port)
        c = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
        c.set_proxy(socks.SOCKS5, "127.0.0.1", port)
        c.settimeout(3)
        c.sendto(b"blocked", ("127.0.0.1", blocked.port))
        c.sendto(b"allowed", ("127.0.0.1", allowed.port))
        d, src = c.recvfrom(8192)
        self.assertEqual((d, src), (b"echo:allowed", ("127.0.0.1", allowed.port)))
        with self.assertRaises(socket.timeout):
            c.recvfrom(8192)
        c.close()
        self.assertEqual(blocked.received, [])
        # Each datagram is a question, network "udp".
        self.assertIn([["network", "udp"], ["addr", deny], ["client", ""], ["host", ""],
                       ["path", ""]], self.plugin.bodies("/udp"))

    # ---- bypass on hops and nodes -------------------------------------------------------------

    def test_bypass_plugin_on_a_node_and_a_hop(self):
        up1, up2, front, dead, front2 = free_ports(5)
        self.start_gost("-L", "http://127.0.0.1:%d" % up1, "-L", "http://127.0.0.1:%d" % up2,
                        ports=[up1, up2], name="upstreams")
        tap1, tap2 = self.start_server(TapProxy(up1)), self.start_server(TapProxy(up2))
        self.plugin.answer = lambda path, req: {"ok": req.get("host", "").startswith("localhost:")}
        cfg = self.write_file("nodes.yaml", """
services:
  - {name: front, addr: "127.0.0.1:%d", handler: {type: http, chain: c}}
  - {name: front2, addr: "127.0.0.1:%d", handler: {type: http, chain: c2}}
chains:
  - name: c
    hops:
      - name: h
        selector: {strategy: fifo}
        nodes:
          - {name: n1, addr: "127.0.0.1:%d", bypass: ask-node}
          - {name: n2, addr: "127.0.0.1:%d"}
  - name: c2
    hops:
      - name: h2
        bypass: ask-hop
        nodes: [{name: dead, addr: "127.0.0.1:%d"}]
bypasses:
  - name: ask-node
    plugin: {type: http, addr: "%s", timeout: 2s}
  - name: ask-hop
    plugin: {type: http, addr: "%s", timeout: 2s}
""" % (front, front2, tap1.port, tap2.port, dead, self.plugin.url("/node"),
            self.plugin.url("/hop")))
        self.start_gost("-C", cfg, ports=[front, front2], name="front")
        # The node's plugin says "bypassed" for localhost: the route skips n1 for n2.
        target = "localhost:%d" % self.origin.port
        r = curl("http://%s/" % target, proxy=self.proxy(front))
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        self.assertEqual((len(tap1.captures), len(tap2.captures)), (0, 1))
        # A hop's and a node's plugin are told the requested address as "host" too.
        self.assertEqual(self.plugin.bodies("/node")[-1],
                         [["network", "tcp"], ["addr", target], ["client", ""], ["host", target],
                          ["path", ""]])
        r = curl(self.origin.url, proxy=self.proxy(front))  # not bypassed: fifo takes n1
        self.assertEqual(r.http_code, "200", r)
        self.assertEqual((len(tap1.captures), len(tap2.captures)), (1, 1))
        # The hop's plugin cuts the chain: localhost is dialed directly, past the dead node.
        r = curl("http://%s/" % target, proxy=self.proxy(front2))
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        self.assertEqual(dict(self.plugin.bodies("/hop")[-1])["host"], target)
        # Not bypassed: through the dead node, which fails.
        r = curl(self.origin.url, proxy=self.proxy(front2))
        self.assertEqual(r.http_code, "503", r)

    # ---- hosts -------------------------------------------------------------------------------

    def test_hosts_plugin_maps_service_targets_and_node_addresses(self):
        up, front, direct = free_ports(3)
        self.start_gost("-L", "http://127.0.0.1:%d" % up, port=up, name="upstream")
        tap = self.start_server(TapProxy(up))
        names = {"made-up.test": ["127.0.0.1"], "node.test": ["::ffff:127.0.0.1", "10.0.0.1"]}
        self.plugin.answer = lambda path, req: (
            {"ips": names[req.get("host")], "ok": True} if req.get("host") in names
            else {"ok": False})
        cfg = self.write_file("hosts.yaml", """
services:
  - {name: direct, addr: "127.0.0.1:%d", hosts: ask, handler: {type: http}}
  - {name: front, addr: "127.0.0.1:%d", handler: {type: http, chain: c}}
chains:
  - name: c
    hops:
      - name: h
        hosts: ask
        nodes: [{name: n, addr: "node.test:%d"}]
hosts:
  - name: ask
    mappings: [{ip: 10.9.9.9, hostname: made-up.test}]   # a plugin replaces the mappings
    plugin: {type: http, addr: "%s", timeout: 2s}
""" % (direct, front, tap.port, self.plugin.url("/hosts")))
        self.start_gost("-C", cfg, ports=[direct, front])
        url = "http://made-up.test:%d/" % self.origin.port
        r = curl(url, proxy=self.proxy(direct))
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        self.assertEqual(self.plugin.bodies("/hosts")[-1],
                         [["network", "ip"], ["host", "made-up.test"], ["client", ""]])
        r = curl(url, proxy=self.proxy(direct), tunnel=True)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        # A name the plugin does not map resolves as usual.
        r = curl("http://localhost:%d/" % self.origin.port, proxy=self.proxy(direct))
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        # The node's address "node.test:<port>" is mapped by the hop's hosts (the first IP).
        r = curl(self.origin.url, proxy=self.proxy(front))
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        self.assertEqual(len(tap.captures), 1)
        self.assertIn([["network", "ip"], ["host", "node.test"], ["client", ""]],
                      self.plugin.bodies("/hosts"))

    # ---- failing plugins ---------------------------------------------------------------------

    def failing_plugin_config(self, addr, with_auther=False):
        pa, pb, ph, pu = free_ports(4)
        self.auth_port = pu
        extra = ""
        if with_auther:
            extra = """
  - {name: usr, addr: "127.0.0.1:%d", handler: {type: http, auther: u}}
authers: [{name: u, plugin: {type: http, addr: "%s/u", timeout: 500ms}}]""" % (pu, addr)
        cfg = self.write_file("fail.yaml", """
admissions: [{name: a, plugin: {type: http, addr: "%s/a", timeout: 500ms}}]
bypasses: [{name: b, plugin: {type: http, addr: "%s/b", timeout: 500ms}}]
hosts: [{name: h, plugin: {type: http, addr: "%s/h", timeout: 500ms}}]
services:
  - {name: adm, addr: "127.0.0.1:%d", admission: a, handler: {type: http}}
  - {name: byp, addr: "127.0.0.1:%d", bypass: b, handler: {type: http}}
  - {name: hst, addr: "127.0.0.1:%d", hosts: h, handler: {type: http}}%s
""" % (addr, addr, addr, pa, pb, ph, extra))
        ports = [pa, pb, ph] + ([pu] if with_auther else [])
        proc = self.start_gost("-C", cfg, ports=ports)
        return proc, pa, pb, ph

    def check_failing(self, proc, pa, pb, ph, mode):
        limit = 0.5 + 1.0  # the plugin's timeout + 1 s
        # Admission: GOST refuses when the plugin does not answer ok (closed, no byte).
        t0 = time.monotonic()
        self.assertEqual(connect_request(pa, self.echo.addr), b"", mode)
        self.assertLess(time.monotonic() - t0, limit, mode)
        # Bypass: not bypassed (GOST's Contains is false), the target is served.
        t0 = time.monotonic()
        r = curl(self.origin.url, proxy=self.proxy(pb))
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), (mode, r))
        self.assertLess(time.monotonic() - t0, limit, mode)
        # Hosts: no mapping, the name resolves as usual.
        t0 = time.monotonic()
        r = curl("http://localhost:%d/" % self.origin.port, proxy=self.proxy(ph))
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), (mode, r))
        self.assertLess(time.monotonic() - t0, limit, mode)
        self.assertAlive(proc)
        time.sleep(0.2)
        self.assertEqual(self.echo.connections, 0, mode)

    def test_failing_plugins_keep_the_service_up(self):
        base = "http://%s:%d" % (LOOPBACK, self.plugin.port)
        self.plugin.answer = lambda path, req: {"ok": True}
        for mode in ("slow", "500", "garbage"):
            self.plugin.mode = mode
            before = len(self.plugin.requests)
            proc, pa, pb, ph = self.failing_plugin_config(base)
            self.check_failing(proc, pa, pb, ph, mode)
            self.assertGreaterEqual(len(self.plugin.requests) - before, 3, mode)  # each was asked
            proc.stop()
        # Down: nothing listens on the plugin's port.
        down = free_port()
        proc, pa, pb, ph = self.failing_plugin_config("http://%s:%d" % (LOOPBACK, down))
        self.check_failing(proc, pa, pb, ph, "down")

    def outage_lines(self, proc, where, url):
        text = proc.stderr_text() + proc.stdout_text()
        return [ln for ln in text.splitlines() if "%s: plugin %s: " % (where, url) in ln]

    def test_failing_plugins_are_logged_once_per_outage(self):
        # GOST logs nothing; ours: one warning per outage per plugin naming its address and the
        # error, one line when it answers again (docs/ARCHITECTURE.md "Sources").
        base = "http://%s:%d" % (LOOPBACK, self.plugin.port)
        self.plugin.answer = lambda path, req: {"ok": True}
        self.plugin.mode = "500"
        proc, pa, pb, ph = self.failing_plugin_config(base, with_auther=True)
        plugins = (("admission a", base + "/a"), ("bypass b", base + "/b"),
                   ("hosts h", base + "/h"), ("auther u", base + "/u"))

        def ask_all(mode):
            self.check_failing(proc, pa, pb, ph, mode)
            r = curl(self.origin.url, proxy="http://u:p@127.0.0.1:%d" % self.auth_port)
            return r.http_code

        for _ in range(3):
            self.assertEqual(ask_all("500"), "407")
        for where, url in plugins:
            lines = self.outage_lines(proc, where, url)
            self.assertEqual(len(lines), 1, (where, lines))
            self.assertIn("HTTP status 500", lines[0])
        # It answers again: one "recovered" line each, the auther lets the user in.
        self.plugin.mode = "ok"
        r = curl(self.origin.url, proxy=self.proxy(pa))
        self.assertEqual(r.http_code, "200", r)
        curl(self.origin.url, proxy=self.proxy(pb))
        curl("http://localhost:%d/" % self.origin.port, proxy=self.proxy(ph))
        r = curl(self.origin.url, proxy="http://u:p@127.0.0.1:%d" % self.auth_port)
        self.assertEqual(r.http_code, "200", r)
        for where, url in plugins:
            lines = self.outage_lines(proc, where, url)
            self.assertEqual(len(lines), 2, (where, lines))
            self.assertIn("recovered", lines[1])
        # Slower than its timeout: a new outage, logged once, naming the timeout.
        self.plugin.mode = "slow"
        self.plugin.delay = 1.0
        for _ in range(2):
            self.assertEqual(ask_all("slow"), "407")
        for where, url in plugins:
            lines = self.outage_lines(proc, where, url)
            self.assertEqual(len(lines), 3, (where, lines))
            self.assertIn("timeout after 500ms", lines[2])
        self.assertAlive(proc)
        proc.stop()
        # Down: nothing listens on the plugin's port.
        self.plugin.mode = "ok"
        down = "http://%s:%d" % (LOOPBACK, free_port())
        proc, pa, pb, ph = self.failing_plugin_config(down, with_auther=True)
        for _ in range(2):
            self.assertEqual(ask_all("down"), "407")
        for where, path in (("admission a", "/a"), ("bypass b", "/b"), ("hosts h", "/h"),
                            ("auther u", "/u")):
            lines = self.outage_lines(proc, where, down + path)
            self.assertEqual(len(lines), 1, (where, lines))
            self.assertIn("onnection refused", lines[0])

    def test_forwarder_node_bypass_plugin(self):
        # A forwarder node whose bypass plugin says its address is bypassed is never dialed
        # (docs/PROTOCOLS.md "cli: forwarding"); the plugin hears each node's own address.
        skipped = self.start_server(EchoServer())
        self.plugin.answer = lambda path, req: {"ok": req.get("addr") == skipped.addr}
        port = free_port()
        cfg = self.write_file("fwdp.yaml", """
services:
  - name: fwd
    addr: "127.0.0.1:%d"
    handler: {type: tcp}
    listener: {type: tcp}
    forwarder:
      nodes:
        - {name: a, addr: "%s", bypass: ask}
        - {name: b, addr: "%s", bypass: ask}
bypasses: [{name: ask, plugin: {type: http, addr: "%s", timeout: 2s}}]
""" % (port, skipped.addr, self.echo.addr, self.plugin.url("/fwd")))
        self.start_gost("-C", cfg, port=port)
        for i in range(4):
            s = socket.create_connection((LOOPBACK, port), timeout=10)
            s.sendall(b"ping%d" % i)
            self.assertEqual(recv_exact(s, 5), b"ping%d" % i)
            s.close()
        time.sleep(0.2)
        self.assertEqual(skipped.connections, 0, "a bypassed forwarder node was dialed")
        bodies = [dict(b) for b in self.plugin.bodies("/fwd")]
        self.assertGreaterEqual(len(bodies), 8)
        self.assertEqual({b["addr"] for b in bodies}, {skipped.addr, self.echo.addr})
        self.assertEqual({b["network"] for b in bodies}, {"tcp"})

    def test_api_and_metrics_authers_with_a_plugin(self):
        # @api's and @metrics' `auther` may be a plugin: asked as the services ask it.
        pa, pm, ps = free_ports(3)
        self.plugin.answer = lambda path, req: {
            "ok": (req.get("username"), req.get("password")) == ("carol", "pw"), "id": "carol"}
        cfg = self.write_file("api.yaml", """
api: {addr: "127.0.0.1:%d", auther: plug}
metrics: {addr: "127.0.0.1:%d", auther: plug}
authers: [{name: plug, plugin: {type: http, addr: "%s", timeout: 1s}}]
services: [{name: s, addr: "127.0.0.1:%d", handler: {type: http}}]
""" % (pa, pm, self.plugin.url("/auth"), ps))
        self.start_gost("-C", cfg, ports=[pa, pm, ps])
        api = "http://127.0.0.1:%d/config" % pa
        met = "http://127.0.0.1:%d/metrics" % pm
        for url in (api, met):
            self.assertEqual(curl(url).http_code, "401", url)
            self.assertEqual(curl(url, extra=["-u", "carol:bad"]).http_code, "401", url)
            r = curl(url, extra=["-u", "carol:pw"])
            self.assertEqual(r.http_code, "200", (url, r))
        body = dict(self.plugin.bodies("/auth")[-1])
        self.assertEqual((body["username"], body["password"]), ("carol", "pw"))
        self.assertEqual(body["service"], "@metrics")
        # A plugin that fails: refused, the endpoints stay up.
        self.plugin.mode = "500"
        for url in (api, met):
            self.assertEqual(curl(url, extra=["-u", "carol:pw"]).http_code, "401", url)

    # ---- configuration -----------------------------------------------------------------------

    def test_config_round_trip_prints_the_plugin_blocks(self):
        port = free_port()
        cfg = self.write_file("rt.yaml", """
services:
  - {name: proxy, addr: "127.0.0.1:%d", admission: a, bypass: b, hosts: h, limiter: l,
     handler: {type: http}}
admissions: [{name: a, plugin: {type: http, addr: "http://127.0.0.1:1/a", timeout: 3s, token: t1}}]
limiters: [{name: l, plugin: {type: http, addr: "http://127.0.0.1:1/l", timeout: 2s}}]
bypasses: [{name: b, plugin: {type: http, addr: "http://127.0.0.1:1/b"}}]
hosts: [{name: h, plugin: {type: http, addr: "http://127.0.0.1:1/h", timeout: 1.5s}}]
""" % port)
        r = run_gost(["-C", cfg, "-O", "yaml"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for block in ("admissions:\n  - name: a\n    plugin:\n      type: http\n"
                      "      addr: http://127.0.0.1:1/a\n      timeout: 3s\n      token: t1\n",
                      "bypasses:\n  - name: b\n    plugin:\n      type: http\n"
                      "      addr: http://127.0.0.1:1/b\n",
                      "hosts:\n  - name: h\n    plugin:\n      type: http\n"
                      "      addr: http://127.0.0.1:1/h\n      timeout: 1.5s\n",
                      "limiters:\n  - name: l\n    plugin:\n      type: http\n"
                      "      addr: http://127.0.0.1:1/l\n      timeout: 2s\n"):
            self.assertIn(block, out)
        # What it printed loads again and prints the same.
        again = self.write_file("again.yaml", out)
        r2 = run_gost(["-C", again, "-O", "yaml"])
        self.assertEqual((r2.returncode, r2.stdout.decode()), (0, out), r2.stderr)

    def test_unsupported_plugins_are_refused_by_name(self):
        port = free_port()
        for section, line, want in (
                ("admissions", "plugin: {type: grpc, addr: \"127.0.0.1:1\"}", b"grpc"),
                ("bypasses", "plugin: {type: http, addr: \"https://127.0.0.1:1/\"}", b"https"),
                ("climiters", "plugin: {type: http, addr: \"http://127.0.0.1:1/\"}",
                 b"plugin: GOST has no plugin for this limiter")):
            ref = {"admissions": "admission: x", "bypasses": "bypass: x",
                   "climiters": "climiter: x"}[section]
            cfg = self.write_file("bad.yaml", """
services:
  - {name: proxy, addr: "127.0.0.1:%d", %s, handler: {type: http}}
%s:
  - {name: x, %s}
""" % (port, ref, section, line))
            r = run_gost(["-C", cfg], timeout=15)
            self.assertNotEqual(r.returncode, 0, section)
            self.assertIn(want, r.stderr + r.stdout, section)


if __name__ == "__main__":
    gostlib.main()
