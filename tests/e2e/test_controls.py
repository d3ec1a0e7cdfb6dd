"""End-to-end tests of the controls: admissions, bypasses and hosts on services, hops and nodes
(docs/PROTOCOLS.md "config: controls", "cli: query keys"), from the command line, YAML, the web
API and a reload, seen by real clients (curl, PySocks) and raw sockets.

Run: /usr/bin/python3 tests/e2e/test_controls.py <path-to-gost>
"""

import json
import os
import signal
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (LOOPBACK, RESP_200_CONNECT, RESP_503_CONNECT, EchoServer, OriginServer, TapProxy, curl,  # noqa: E402
                     free_port, free_ports, recv_exact, run_gost)

try:
    import socks  # python3-socks (PySocks)
except ImportError:  # pragma: no cover
    socks = None

RESP_403 = (b"HTTP/1.1 403 Forbidden\r\n"
            b"Connection: close\r\n"
            b"Proxy-Agent: gost/3.0\r\n"
            b"\r\n")
RELAY_FORBIDDEN = bytes.fromhex("01030000")


def connect_from(source_ip, port, timeout=10.0):
    """A TCP connection to 127.0.0.1:port from `source_ip` (a loopback alias such as 127.0.0.2)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source_ip, 0))
    s.connect((LOOPBACK, port))
    return s


def read_all(sock, timeout=5.0):
    """Everything until the peer closes (EOF or reset); bytes read so far."""
    sock.settimeout(timeout)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return out
        except socket.timeout:
            raise AssertionError("connection still open after %.0fs (read %r)" % (timeout, out))
        if not d:
            return out
        out += d
    raise AssertionError("connection still open after %.0fs (read %r)" % (timeout, out))


def http_request(port, raw, source_ip=LOOPBACK):
    s = connect_from(source_ip, port)
    try:
        s.sendall(raw)
        return read_all(s)
    finally:
        s.close()


def relay_connect(host, port):
    """A relay CONNECT request for host:port (docs/PROTOCOLS.md "relay: request and response")."""
    h = host.encode()
    addr = b"\x03" + bytes([len(h)]) + h + struct.pack("!H", port)
    feature = struct.pack("!BH", 2, len(addr)) + addr
    return struct.pack("!BBH", 1, 1, len(feature)) + feature


def socks4_connect(ip, port):
    return struct.pack("!BBH", 4, 1, port) + socket.inet_aton(ip) + b"\x00"


class ControlsTest(gostlib.GostTestCase):

    def setUp(self):
        self.origin = self.start_server(OriginServer())
        self.echo = self.start_server(EchoServer())

    def connect_via(self, port, target):
        return http_request(port, ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())

    # ---- admission ---------------------------------------------------------------------------

    def test_admission_closes_refused_clients_without_a_byte(self):
        # Blacklist (command line): 127.0.0.2 refused, 127.0.0.1 served.
        p1, p2 = free_ports(2)
        self.start_gost("-L", "http://127.0.0.1:%d?admission=127.0.0.2" % p1,
                        "-L", "http://127.0.0.1:%d?admission=~127.0.0.1" % p2, ports=[p1, p2])
        for port in (p1, p2):
            r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % port)
            self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
            req = ("CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.addr).encode()
            before = self.echo.connections
            self.assertEqual(http_request(port, req, source_ip="127.0.0.2"), b"", port)
            time.sleep(0.2)
            self.assertEqual(self.echo.connections, before, "a refused client dialed the target")
            # An admitted client on the same service still works afterwards.
            s = connect_from("127.0.0.1", port)
            s.sendall(req)
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
            s.sendall(b"ping")
            self.assertEqual(recv_exact(s, 4), b"ping")
            s.close()

    def test_admission_refuses_before_the_tls_handshake(self):
        port = free_port()
        cfg = self.write_file("adm.yaml", """
services:
  - name: tls-proxy
    addr: 127.0.0.1:%d
    admissions: [only-local]
    handler: {type: http}
    listener: {type: tls}
admissions:
  - name: only-local
    whitelist: true
    matchers: ["127.0.0.1/32"]
""" % port)
        self.start_gost("-C", cfg, port=port)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        # The refused client's ClientHello gets no ServerHello: the connection just ends.
        raw = connect_from("127.0.0.2", port)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="x") as t:
                t.recv(1)
        raw.close()
        # The admitted one completes TLS and talks HTTP.
        with ctx.wrap_socket(connect_from("127.0.0.1", port), server_hostname="x") as t:
            t.sendall(("CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.addr).encode())
            self.assertTrue(t.recv(100).startswith(b"HTTP/1.1 200"))
            t.sendall(b"ping")
            self.assertEqual(recv_exact(t, 4), b"ping")

    # ---- bypass on services -----------------------------------------------------------------

    def test_bypassed_targets_are_refused_and_never_dialed(self):
        ph, ps5, ps4, pr = free_ports(4)
        cfg = self.write_file("byp.yaml", """
services:
  - {name: http, addr: "127.0.0.1:%d", bypass: deny-local, handler: {type: http}}
  - {name: socks5, addr: "127.0.0.1:%d", bypass: deny-local, handler: {type: socks5}}
  - {name: socks4, addr: "127.0.0.1:%d", bypasses: [deny-local], handler: {type: socks4}}
  - {name: relay, addr: "127.0.0.1:%d", bypass: deny-local, handler: {type: relay}}
bypasses:
  - name: deny-local
    matchers: ["localhost", "127.0.0.1:%d", ".blocked.test"]
""" % (ph, ps5, ps4, pr, self.echo.port))
        self.start_gost("-C", cfg, ports=[ph, ps5, ps4, pr])
        local = "localhost:%d" % self.origin.port
        # HTTP: CONNECT and plain requests, seen by curl and on the wire.
        r = curl("http://%s/" % local, proxy="http://127.0.0.1:%d" % ph, tunnel=True)
        self.assertEqual(r.http_connect, "403", r)
        r = curl("http://%s/" % local, proxy="http://127.0.0.1:%d" % ph)
        self.assertEqual(r.http_code, "403", r)
        self.assertEqual(self.connect_via(ph, self.echo.addr), RESP_403)
        self.assertEqual(http_request(ph, b"GET http://a.blocked.test/ HTTP/1.1\r\nHost: a\r\n\r\n"),
                         RESP_403)
        # Not covered: 127.0.0.1:<origin port> passes.
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % ph)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        self.assertEqual(len(self.origin.requests), 1, self.origin.requests)
        # SOCKS5 (PySocks): REP 0x02, connection not allowed by ruleset.
        if socks is not None:
            c = socks.socksocket()
            c.set_proxy(socks.SOCKS5, "127.0.0.1", ps5)
            c.settimeout(10)
            with self.assertRaises(socks.ProxyError) as e:
                c.connect(("127.0.0.1", self.echo.port))
            c.close()
            self.assertIn("0x02", str(e.exception))
            c = socks.socksocket()
            c.set_proxy(socks.SOCKS5, "127.0.0.1", ps5)
            c.settimeout(10)
            c.connect(("127.0.0.1", self.origin.port))  # allowed
            c.close()
        # SOCKS4: 0x5C.
        s = socket.create_connection((LOOPBACK, ps4), timeout=10)
        s.sendall(socks4_connect("127.0.0.1", self.echo.port))
        self.assertEqual(recv_exact(s, 8)[:2], b"\x00\x5c")
        self.assertEqual(read_all(s), b"")
        s.close()
        # Relay: Forbidden.
        s = socket.create_connection((LOOPBACK, pr), timeout=10)
        s.sendall(relay_connect("sub.blocked.test", 80))
        self.assertEqual(recv_exact(s, 4), RELAY_FORBIDDEN)
        s.close()
        time.sleep(0.2)
        self.assertEqual(self.echo.connections, 0, "a bypassed target was dialed")

    def test_forwarding_services_refuse_bypassed_targets(self):
        pt, pr = free_ports(2)
        self.start_gost("-L", "tcp://127.0.0.1:%d/%s?bypass=127.0.0.1" % (pt, self.echo.addr),
                        "-L", "relay://127.0.0.1:%d/%s?bypass=127.0.0.1" % (pr, self.echo.addr),
                        ports=[pt, pr])
        s = socket.create_connection((LOOPBACK, pt), timeout=10)
        s.sendall(b"ping")
        self.assertEqual(read_all(s), b"")  # port forwarding: closed
        s.close()
        s = socket.create_connection((LOOPBACK, pr), timeout=10)
        s.sendall(struct.pack("!BBH", 1, 1, 0))  # relay forward mode: CONNECT without address
        self.assertEqual(recv_exact(s, 4), RELAY_FORBIDDEN)
        s.close()
        time.sleep(0.2)
        self.assertEqual(self.echo.connections, 0)

    def test_udp_datagrams_to_bypassed_targets_are_dropped(self):
        if socks is None:
            self.skipTest("python3-socks not installed")
        blocked = gostlib.UdpEchoServer()
        self.addCleanup(blocked.close)
        allowed = gostlib.UdpEchoServer()
        self.addCleanup(allowed.close)
        port = free_port()
        self.start_gost("-L", "socks5://127.0.0.1:%d?udp=true&bypass=127.0.0.1:%d" % (port, blocked.port),
                        port=port)
        c = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
        c.set_proxy(socks.SOCKS5, "127.0.0.1", port)
        c.settimeout(2)
        c.sendto(b"blocked", ("127.0.0.1", blocked.port))
        c.sendto(b"allowed", ("127.0.0.1", allowed.port))
        d, src = c.recvfrom(8192)
        self.assertEqual((d, src), (b"echo:allowed", ("127.0.0.1", allowed.port)))
        with self.assertRaises(socket.timeout):
            c.recvfrom(8192)
        c.close()
        self.assertEqual(blocked.received, [])

    def test_forwarder_node_bypass_skips_the_node(self):
        # Two forwarder nodes; the first one's bypass covers its own address, so it is never
        # selected: every connection goes to the second (docs/PROTOCOLS.md "cli: forwarding").
        # A service whose only node is bypassed closes the connection and dials nothing.
        skipped = self.start_server(EchoServer())
        p1, p2 = free_ports(2)
        cfg = self.write_file("fwd.yaml", """
services:
  - name: two
    addr: "127.0.0.1:%d"
    handler: {type: tcp}
    listener: {type: tcp}
    forwarder:
      selector: {strategy: round}
      nodes:
        - {name: a, addr: "%s", bypass: skip-a}
        - {name: b, addr: "%s"}
  - name: one
    addr: "127.0.0.1:%d"
    handler: {type: tcp}
    listener: {type: tcp}
    forwarder: {nodes: [{name: a, addr: "%s", bypasses: [skip-a]}]}
bypasses:
  - {name: skip-a, matchers: ["%s"]}
""" % (p1, skipped.addr, self.echo.addr, p2, skipped.addr, skipped.addr))
        proc = self.start_gost("-C", cfg, ports=[p1, p2])
        for i in range(6):
            s = socket.create_connection((LOOPBACK, p1), timeout=10)
            s.sendall(b"ping%d" % i)
            self.assertEqual(recv_exact(s, 5), b"ping%d" % i)
            s.close()
        s = socket.create_connection((LOOPBACK, p2), timeout=10)
        s.sendall(b"ping")
        self.assertEqual(read_all(s), b"")
        s.close()
        time.sleep(0.2)
        self.assertEqual(skipped.connections, 0, "a bypassed forwarder node was dialed")
        self.assertGreaterEqual(self.echo.connections, 6)
        self.assertIn("node not available", proc.stderr_text() + proc.stdout_text())
        # -O yaml prints the nodes' bypasses, and what it prints loads again the same.
        r = run_gost(["-C", cfg, "-O", "yaml"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("        - name: a\n          addr: %s\n          bypass: skip-a\n"
                      % skipped.addr, out)
        self.assertIn("          bypasses:\n            - skip-a\n", out)
        again = self.write_file("again.yaml", out)
        r2 = run_gost(["-C", again, "-O", "yaml"])
        self.assertEqual((r2.returncode, r2.stdout.decode()), (0, out), r2.stderr)

    def test_whitelist_bypass_and_port_ranges(self):
        port = free_port()
        lo, hi = self.origin.port, self.origin.port
        self.start_gost("-L", "http://127.0.0.1:%d?bypass=~127.0.0.1:%d-%d" % (port, lo, hi), port=port)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % port)
        self.assertEqual(r.http_code, "200", r)
        self.assertEqual(self.connect_via(port, self.echo.addr), RESP_403)
        self.assertEqual(self.echo.connections, 0)

    # ---- bypass on hops and nodes -------------------------------------------------------------

    def test_node_bypass_routes_around_the_node(self):
        up1, up2, front = free_ports(3)
        self.start_gost("-L", "http://127.0.0.1:%d" % up1, "-L", "http://127.0.0.1:%d" % up2,
                        ports=[up1, up2], name="upstreams")
        tap1, tap2 = self.start_server(TapProxy(up1)), self.start_server(TapProxy(up2))
        cfg = self.write_file("nodes.yaml", """
services:
  - {name: front, addr: "127.0.0.1:%d", handler: {type: http, chain: c}}
chains:
  - name: c
    hops:
      - name: h
        selector: {strategy: fifo}
        nodes:
          - {name: n1, addr: "127.0.0.1:%d", bypass: not-via-n1}
          - {name: n2, addr: "127.0.0.1:%d"}
bypasses:
  - name: not-via-n1
    matchers: ["localhost"]
""" % (front, tap1.port, tap2.port))
        self.start_gost("-C", cfg, port=front, name="front")
        r = curl("http://localhost:%d/" % self.origin.port, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        self.assertEqual((len(tap1.captures), len(tap2.captures)), (0, 1))
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)  # fifo: n1
        self.assertEqual(r.http_code, "200", r)
        self.assertEqual((len(tap1.captures), len(tap2.captures)), (1, 1))

    def test_hop_bypass_cuts_the_chain(self):
        dead, front = free_ports(2)  # nothing listens on `dead`
        cfg = self.write_file("hop.yaml", """
services:
  - {name: front, addr: "127.0.0.1:%d", handler: {type: http, chain: c}}
chains:
  - name: c
    hops:
      - name: h
        bypass: direct
        nodes: [{name: dead, addr: "127.0.0.1:%d"}]
bypasses:
  - {name: direct, matchers: ["localhost"]}
""" % (front, dead))
        self.start_gost("-C", cfg, port=front)
        # Covered: the chain is cut before the hop, the target is dialed directly.
        r = curl("http://localhost:%d/" % self.origin.port, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        # Not covered: through the dead node, which fails: 503.
        self.assertEqual(self.connect_via(front, self.echo.addr), RESP_503_CONNECT)
        self.assertEqual(self.echo.connections, 0)

    def test_front_proxy_answers_503_when_its_chain_refuses(self):
        up, front = free_ports(2)
        self.start_gost("-L", "http://127.0.0.1:%d?bypass=127.0.0.1" % up, port=up, name="upstream")
        self.start_gost("-L", "http://127.0.0.1:%d" % front, "-F", "http://127.0.0.1:%d" % up,
                        port=front, name="front")
        self.assertEqual(self.connect_via(up, self.echo.addr), RESP_403)
        self.assertEqual(self.connect_via(front, self.echo.addr), RESP_503_CONNECT)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "503", r)
        self.assertEqual(self.echo.connections, 0)
        self.assertEqual(len(self.origin.requests), 0)

    # ---- hosts --------------------------------------------------------------------------------

    def test_hosts_map_targets_and_node_addresses(self):
        up, front, direct = free_ports(3)
        self.start_gost("-L", "http://127.0.0.1:%d" % up, port=up, name="upstream")
        # Service hosts: the target name is mapped.
        self.start_gost("-L", "http://127.0.0.1:%d?hosts=origin.test:127.0.0.1" % direct,
                        port=direct, name="direct")
        r = curl("http://origin.test:%d/" % self.origin.port, proxy="http://127.0.0.1:%d" % direct)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)
        # Hop hosts (command line): the node's own name is mapped.
        self.start_gost("-L", "http://127.0.0.1:%d" % front,
                        "-F", "http://upstream.test:%d?hosts=upstream.test:127.0.0.1" % up,
                        port=front, name="front")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)

    # ---- configuration faces ------------------------------------------------------------------

    def test_command_line_prints_like_gost(self):
        cp = run_gost(["-L", "http://:8080?bypass=~a.com,10.0.0.0/8&admission=127.0.0.1&hosts=a.com:1.2.3.4",
                       "-F", "socks5://h:1?bypass=b.com", "-O", "yaml"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout.decode(), """services:
  - name: service-0
    addr: :8080
    admission: admission-0
    bypass: bypass-1
    hosts: hosts-0
    handler:
      type: http
      chain: chain-0
    listener:
      type: tcp
      metadata:
        admission: 127.0.0.1
        bypass: ~a.com,10.0.0.0/8
        hosts: a.com:1.2.3.4
    metadata:
      admission: 127.0.0.1
      bypass: ~a.com,10.0.0.0/8
      hosts: a.com:1.2.3.4
chains:
  - name: chain-0
    hops:
      - name: hop-0
        bypass: bypass-0
        nodes:
          - name: node-0
            addr: h:1
            connector:
              type: socks5
            dialer:
              type: tcp
              tls:
                serverName: h
admissions:
  - name: admission-0
    matchers:
      - 127.0.0.1
bypasses:
  - name: bypass-0
    matchers:
      - b.com
  - name: bypass-1
    whitelist: true
    matchers:
      - a.com
      - 10.0.0.0/8
hosts:
  - name: hosts-0
    mappings:
      - ip: 1.2.3.4
        hostname: a.com
""")
        cp = run_gost(["-L", "http://:8080?bypass=a.com", "-O", "json"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        doc = json.loads(cp.stdout)
        self.assertEqual(doc["bypasses"], [{"name": "bypass-0", "matchers": ["a.com"]}])

    def test_bad_controls_are_refused_by_name(self):
        for text, want in (
                ("services: [{name: s, addr: ':0', bypass: nope}]", b'service s: bypass \\"nope\\" is not defined'),
                ("services: [{name: s, addr: ':0', admission: a}]\nadmissions: [{name: a, matchers: [example.com]}]",
                 b'admission a: matcher \\"example.com\\" is neither an IP address nor a CIDR'),
                ("climiters: [{name: l, limits: ['$ 1'], reload: 10s, plugin: {type: http, addr: 'http://127.0.0.1:1/'}}]\n"
                 "services: [{name: s, addr: ':0'}]",
                 b"climiter l: plugin: GOST has no plugin for this limiter"),
                ("limiters: [{name: l, plugin: {type: grpc, addr: '127.0.0.1:1'}}]\n"
                 "services: [{name: s, addr: ':0'}]",
                 b'limiter l: plugin type \\"grpc\\" is not supported by this implementation'),
                ("services: [{name: s, addr: ':0', forwarder: {nodes: [{name: a, addr: '127.0.0.1:1', bypass: nope}]}}]",
                 b'service s forwarder node a: bypass \\"nope\\" is not defined'),
                ("bypasses: [{name: b, plugin: {addr: '127.0.0.1:1'}}]\n"  # GOST's default: grpc
                 "services: [{name: s, addr: ':0'}]",
                 b'bypass b: plugin type \\"grpc\\" is not supported by this implementation'),
                ("resolvers: [{name: r}]", b"resolvers: not supported")):
            path = self.write_file("bad.yaml", text)
            cp = run_gost(["-C", path], timeout=10)
            self.assertEqual(cp.returncode, 1, (text, cp.stderr))
            self.assertIn(want, cp.stderr, text)

    # ---- web API and reload -------------------------------------------------------------------

    def api(self, port, method, path, body=None):
        import http.client
        import base64
        c = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
        h = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def test_api_routes_change_a_bypass(self):
        port, papi = free_ports(2)
        cfg = self.write_file("api.yaml", """
services:
  - {name: s, addr: "127.0.0.1:%d", bypass: b, handler: {type: http}}
bypasses:
  - {name: b, matchers: ["nothing.test"]}
""" % port)
        self.start_gost("-C", cfg, "-api", "admin:secret@127.0.0.1:%d" % papi, ports=[port, papi])
        self.assertEqual(self.api(papi, "GET", "/config/bypasses"),
                         (200, b'{"data":{"count":1,"list":[{"name":"b","matchers":["nothing.test"]}]}}'))
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % port)
        self.assertEqual(r.http_code, "200", r)
        self.assertEqual(self.api(papi, "PUT", "/config/bypasses/b", {"matchers": ["127.0.0.1"]}),
                         (200, b'{"msg":"OK"}'))
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % port)
        self.assertEqual(r.http_code, "403", r)
        self.assertEqual(self.api(papi, "GET", "/config/bypasses/b"),
                         (200, b'{"data":{"name":"b","matchers":["127.0.0.1"]}}'))
        # Deleting a bypass a service still names is refused, and changes nothing.
        status, body = self.api(papi, "DELETE", "/config/bypasses/b")
        self.assertNotEqual(status, 200, body)
        self.assertIn(b'bypass \\"b\\" is not defined', body)
        self.assertEqual(curl(self.origin.url, proxy="http://127.0.0.1:%d" % port).http_code, "403")
        # The other collections.
        self.assertEqual(self.api(papi, "POST", "/config/admissions", {"name": "a", "matchers": ["10.0.0.1"]}),
                         (200, b'{"msg":"OK"}'))
        self.assertEqual(self.api(papi, "POST", "/config/hosts",
                                  {"name": "h", "mappings": [{"ip": "127.0.0.1", "hostname": "x.test"}]}),
                         (200, b'{"msg":"OK"}'))
        self.assertEqual(self.api(papi, "GET", "/config/hosts/h"),
                         (200, b'{"data":{"name":"h","mappings":[{"ip":"127.0.0.1","hostname":"x.test"}]}}'))
        self.assertEqual(self.api(papi, "POST", "/config/limiters", {"name": "l", "limits": ["$ 1MB"]}),
                         (200, b'{"msg":"OK"}'))
        self.assertEqual(self.api(papi, "GET", "/config/limiters"),
                         (200, b'{"data":{"count":1,"list":[{"name":"l","limits":["$ 1MB"]}]}}'))

    def test_reload_changes_a_bypass(self):
        port = free_port()
        text = """
services:
  - {name: s, addr: "127.0.0.1:%d", bypass: b, handler: {type: http}}
bypasses:
  - {name: b, matchers: [%s]}
"""
        cfg = self.write_file("reload.yaml", text % (port, '"nothing.test"'))
        p = self.start_gost("-C", cfg, port=port)
        self.assertEqual(curl(self.origin.url, proxy="http://127.0.0.1:%d" % port).http_code, "200")
        with open(cfg, "w") as f:
            f.write(text % (port, '"127.0.0.1"'))
        p.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        code = None
        while time.time() < deadline:
            code = curl(self.origin.url, proxy="http://127.0.0.1:%d" % port).http_code
            if code == "403":
                break
            time.sleep(0.2)
        self.assertEqual(code, "403")
        self.assertEqual(len(self.origin.requests), 1)


if __name__ == "__main__":
    gostlib.main()
