#!/usr/bin/env python3
"""GOST's tunnel handler and connector (docs/PROTOCOLS.md "tunnel").

A web server, an echo server and a duplex server "behind NAT" are published through our `tunnel`
server: connectors `-L rtcp://:0/<service> -F tunnel+<transport>://server?tunnel.id=<id>` register
with a tunnel ID; visitors reach them through the server's `entrypoint` (HTTP routed by Host:
`?tunnel=host:id` rules or an `ingresses` section) or as `-L tcp://:V/<host>:80 -F
tunnel+<transport>://server?tunnel.id=<id>`. Over ws, wss, grpc, h2c and one h3 run: an echo, 100
concurrent inbound connections, 8 MiB both ways with checksums, curl through the entrypoint; 502
(exact bytes) for an unmapped Host, 503 once the connectors are gone; Gost-Sid and
Gost-Forwarded-Node upstream; two connectors of one tunnel share the load; the server restarted
while the connector runs; garbage on the entrypoint; the connector's BIND bytes against a
scripted server (smux v2 after it); -O yaml.

Usage: test_tunnel.py <path-to-gost>
"""

import os
import unittest
import signal
import socket
import ssl
import struct
import threading
import time

import gostlib
import test_sources
import udplib
from gostlib import (DuplexServer, EchoServer, OriginServer, UdpEchoServer, curl, free_port,
                     recv_exact, run_gost, start_gost_in, temp_dir, wait_port, wait_until)

MIB = 1 << 20
TID_WEB = "893787fd-fcd2-46a0-8dc4-f9f8a1f1b0c9"
TID_ECHO = "6ff5e2b1-34b0-4b41-9b0b-bf1d7c1bb7a1"
TID_DUP = "0e6d3f5a-0d62-4b8e-8a55-42f3c2a8a9d0"
TID_UDP = "5b1e9a4c-7d2f-4e3a-9c8b-1a2b3c4d5e6f"
RULES = "app.example.com:%s,echo.example.com:%s,dup.example.com:%s" % (TID_WEB, TID_ECHO, TID_DUP)
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
echo_once = gostlib.echo_once
answers = gostlib.echo_answers
dns_query = gostlib.dns_query


def raw_exchange(port, data, timeout=5.0):
    """Sends `data`, returns everything received until the peer closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        if data:
            s.sendall(data)
        out = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    return out, True
                out += d
        except socket.timeout:
            return out, False


def http_status(ep, host):
    r = curl("http://127.0.0.1:%d/" % ep, extra=("-H", "Host: " + host))
    return r


class TunnelBase(gostlib.GostTestCase):

    def setUp(self):
        self.home = temp_dir(self, "gost-e2e-tunnel-home-")
        self.echo = self.start_server(EchoServer())

    def gost(self, *args, name="gost", port=None, expect_running=True):
        return start_gost_in(self, *args, cwd=self.home, env_extra={"HOME": self.home}, port=port,
                             name=name, expect_running=expect_running)

    def server(self, scheme, port=None, query="", name="server", ep=None):
        """The tunnel server with an entrypoint and the Host rules; returns (port, ep, proc)."""
        h3 = scheme.endswith("h3")
        port = port or (udplib.free_udp_port() if h3 else free_port())
        ep = ep or free_port()
        q = "entrypoint=127.0.0.1:%d&tunnel=%s" % (ep, RULES) + ("&" + query if query else "")
        url = "%s://127.0.0.1:%d?%s" % (scheme, port, q)
        if h3:
            p = self.gost("-L", url, name=name, port=ep)
            if not udplib.wait_udp_bound(p.proc, port, 10.0):
                self.fail("%s did not bind UDP %d\n%s" % (name, port, p.diagnostics()))
        else:
            p = self.gost("-L", url, name=name, port=port)
        self.assertTrue(wait_port(ep, 10.0, proc=p.proc), p.diagnostics())
        return port, ep, p

    def connector(self, scheme, srv, tid, target, query="", name="connector", server=None):
        chain = "%s://127.0.0.1:%d?tunnel.id=%s" % (scheme, srv, tid) + ("&" + query if query else "")
        p = self.gost("-L", "rtcp://:0/%s" % target, "-F", chain, name=name)
        return p

    def visitor(self, scheme, srv, tid, host, query="", name="visitor"):
        port = free_port()
        chain = "%s://127.0.0.1:%d?tunnel.id=%s" % (scheme, srv, tid) + ("&" + query if query else "")
        p = self.gost("-L", "tcp://127.0.0.1:%d/%s" % (port, host), "-F", chain, name=name,
                      port=port)
        return port, p

    def wait_registered(self, connector, n=1):
        ok = wait_until(lambda: connector.stderr_text().count("create tunnel on") >= n, 15.0)
        self.assertTrue(ok, connector.diagnostics())

    # -- checks ------------------------------------------------------------------------------------

    def run_duplex(self, port, duplex, size):
        gostlib.run_duplex(self, port, duplex, size)

    def check_concurrent(self, port, n=100):
        gostlib.check_concurrent_echo(self, port, n)


class TunnelTransportTest(TunnelBase):
    """Connectors and visitors over each data channel."""

    def check_transport(self, scheme, query=""):
        srv, ep, server = self.server(scheme, query=query)
        origin = self.start_server(OriginServer())
        duplex = self.start_server(DuplexServer(8 * MIB))
        web = self.connector(scheme, srv, TID_WEB, origin.addr, query, name="conn-web")
        echo = self.connector(scheme, srv, TID_ECHO, self.echo.addr, query, name="conn-echo")
        dup = self.connector(scheme, srv, TID_DUP, duplex.addr, query, name="conn-dup")
        for c in (web, echo, dup):
            self.wait_registered(c)
        # curl through the entrypoint, routed by Host
        r = curl("http://127.0.0.1:%d/" % ep, extra=("-H", "Host: app.example.com"))
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", OriginServer.BODY), r)
        r = curl("http://127.0.0.1:%d/big" % ep, timeout=20, extra=("-H", "Host: app.example.com"))
        self.assertEqual((r.rc, r.http_code), (0, "200"), r)
        self.assertEqual(r.body, origin.big)
        # a visitor with the tunnel ID: echo, 100 concurrent, 8 MiB both ways
        vport, _ = self.visitor(scheme, srv, TID_ECHO, "echo.example.com:80", query)
        self.assertTrue(answers(vport, b"hello through " + scheme.encode()))
        self.check_concurrent(vport, 100)
        dport, _ = self.visitor(scheme, srv, TID_DUP, "dup.example.com:80", query, name="vdup")
        self.run_duplex(dport, duplex, 8 * MIB)
        for p in (server, web, echo, dup):
            self.assertAlive(p)

    def test_ws(self):
        self.check_transport("tunnel+ws")

    def test_wss(self):
        self.check_transport("tunnel+wss")

    def test_grpc(self):
        self.check_transport("tunnel+grpc", "grpcInsecure=true")

    def test_h2c(self):
        self.check_transport("tunnel+h2c")

    def test_h3(self):
        """One run over HTTP/3 (QUIC): a visitor's echo, 100 concurrent, 8 MiB both ways."""
        srv, ep, server = self.server("tunnel+h3")
        duplex = self.start_server(DuplexServer(8 * MIB))
        echo = self.connector("tunnel+h3", srv, TID_ECHO, self.echo.addr, name="conn-echo")
        dup = self.connector("tunnel+h3", srv, TID_DUP, duplex.addr, name="conn-dup")
        self.wait_registered(echo)
        self.wait_registered(dup)
        vport, _ = self.visitor("tunnel+h3", srv, TID_ECHO, "echo.example.com:80")
        self.assertTrue(answers(vport))
        self.check_concurrent(vport, 100)
        dport, _ = self.visitor("tunnel+h3", srv, TID_DUP, "dup.example.com:80", name="vdup")
        self.run_duplex(dport, duplex, 8 * MIB)


class TunnelEntrypointTest(TunnelBase):

    def test_http_routing_and_errors(self):
        """Host routing; Gost-Sid and Gost-Forwarded-Node upstream; 502 for an unmapped Host
        (exact bytes, then closed); 503 at once when the tunnel's connectors are gone."""
        srv, ep, server = self.server("tunnel+ws")
        origin = self.start_server(OriginServer())
        web = self.connector("tunnel+ws", srv, TID_WEB, origin.addr, name="conn-web")
        self.wait_registered(web)
        r = curl("http://127.0.0.1:%d/path/x" % ep, extra=("-H", "Host: app.example.com"))
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", b"path=/path/x"), r)
        headers = dict((k.lower(), v) for k, v in origin.requests[-1]["headers"])
        self.assertIn("gost-sid", headers)
        self.assertTrue(headers["gost-sid"])
        self.assertRegex(headers.get("gost-forwarded-node", ""),
                         r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        self.assertEqual(headers.get("host"), "app.example.com")
        # a Host with a port routes the same (the port is ignored)
        r = curl("http://127.0.0.1:%d/" % ep, extra=("-H", "Host: app.example.com:8080"))
        self.assertEqual((r.rc, r.http_code), (0, "200"), r)
        # unmapped Host: exactly GOST's 502, then the connection closes
        got, closed = raw_exchange(ep, b"GET / HTTP/1.1\r\nHost: nobody.example.org\r\n\r\n")
        self.assertEqual(got, BAD_GATEWAY)
        self.assertTrue(closed)
        # the connector goes away: 503 at once
        web.proc.kill()
        web.proc.wait(10)
        web.expected_exit = True
        start = time.monotonic()
        self.assertTrue(wait_until(lambda: http_status(ep, "app.example.com").http_code == "503",
                                   10.0))
        got, closed = raw_exchange(ep, b"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
        self.assertEqual(got, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        self.assertLess(time.monotonic() - start, 10.0)
        self.assertAlive(server)

    def test_tls_by_sni(self):
        """A TLS service behind NAT: a ClientHello at the entrypoint is routed by its SNI (the
        `tunnel=` rule), the handshake and the data pass end to end (the certificate is the
        service's own)."""
        cert, key = gostlib.make_self_signed(self.home, "svc", "secure.example.com")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        self.addCleanup(lsock.close)
        stop = threading.Event()
        self.addCleanup(stop.set)

        def serve():
            lsock.settimeout(0.2)
            while not stop.is_set():
                try:
                    c, _ = lsock.accept()
                except OSError:
                    continue
                try:
                    with ctx.wrap_socket(c, server_side=True) as t:
                        t.settimeout(5)
                        data = t.recv(1024)
                        t.sendall(b"tls:" + data)
                except (OSError, ssl.SSLError):
                    pass

        threading.Thread(target=serve, daemon=True).start()
        srv, ep = free_port(), free_port()
        rules = "secure.example.com:%s" % TID_WEB
        server = self.gost("-L", "tunnel+ws://127.0.0.1:%d?entrypoint=127.0.0.1:%d&tunnel=%s"
                           % (srv, ep, rules), name="server", port=srv)
        self.assertTrue(wait_port(ep, 10.0, proc=server.proc), server.diagnostics())
        web = self.connector("tunnel+ws", srv, TID_WEB, "127.0.0.1:%d" % lsock.getsockname()[1],
                             name="conn-tls")
        self.wait_registered(web)
        with open(cert) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        with gostlib.tls_connect(ep, server_hostname="secure.example.com") as t:
            self.assertEqual(t.getpeercert(binary_form=True), der)
            t.sendall(b"hello over tls")
            self.assertEqual(t.recv(1024), b"tls:hello over tls")
        # an SNI nobody maps: the connection is closed without a byte
        with self.assertRaises((ssl.SSLError, OSError)):
            with gostlib.tls_connect(ep, server_hostname="other.example.com", timeout=5):
                pass
        self.assertAlive(server)

    def test_ingresses_section(self):
        """An `ingresses` rule in YAML routes a Host (and its subdomains: '*.' and '.host')."""
        srv, ep = free_port(), free_port()
        self.ingress_service(srv, ep, """  rules:
  - hostname: web.example.net
    endpoint: %s
  - hostname: "*.apps.example.net"
    endpoint: %s
  - hostname: private.example.net
    endpoint: $%s
""" % (TID_WEB, TID_WEB, TID_WEB))
        for host in ("web.example.net", "a.apps.example.net", "x.y.apps.example.net"):
            r = curl("http://127.0.0.1:%d/" % ep, extra=("-H", "Host: " + host))
            self.assertEqual((r.rc, r.http_code, r.body), (0, "200", OriginServer.BODY),
                             (host, r))
        got, closed = raw_exchange(ep, b"GET / HTTP/1.1\r\nHost: example.net\r\n\r\n")
        self.assertEqual(got, BAD_GATEWAY)
        # a private tunnel ("$<id>") is not served at the entrypoint: 502
        got, closed = raw_exchange(ep, b"GET / HTTP/1.0\r\nHost: private.example.net\r\n\r\n")
        self.assertEqual(got, b"HTTP/1.0 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

    def test_reload_changed_ingress(self):
        """SIGHUP with a changed `ingresses` entry: the tunnel service is rebuilt (its entrypoint
        binds again beside the old one), the old service's connectors are closed and register
        again with the new one (back-off), and the new rule routes."""
        srv, ep = free_port(), free_port()

        def rules(host):
            return "  rules:\n  - hostname: %s\n    endpoint: %s\n" % (host, TID_WEB)

        server, web = self.ingress_service(srv, ep, rules("one.example.net"))
        self.assertEqual(http_status(ep, "one.example.net").http_code, "200")
        self.write_ingress_config(srv, ep, rules("two.example.net"))
        server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: http_status(ep, "two.example.net").http_code == "200",
                                   15.0, interval=0.2),
                        server.diagnostics() + web.diagnostics())
        self.assertEqual(http_status(ep, "one.example.net").http_code, "502")
        self.assertGreaterEqual(web.stderr_text().count("create tunnel on"), 2)
        self.assertAlive(server)
        self.assertAlive(web)

    def write_ingress_config(self, srv, ep, ingress):
        """The YAML of a tunnel server whose entrypoint routes by `ingresses[0]` (`ingress`: its
        YAML below the name); returns its path."""
        cfg = os.path.join(self.home, "gost.yaml")
        with open(cfg, "w") as f:
            f.write("""services:
- name: tunnel
  addr: 127.0.0.1:%d
  handler:
    type: tunnel
    metadata:
      entrypoint: 127.0.0.1:%d
      ingress: ingress-0
  listener:
    type: ws
ingresses:
- name: ingress-0
%s""" % (srv, ep, ingress))
        return cfg

    def ingress_service(self, srv, ep, ingress):
        """That server started, and a connector of TID_WEB for an origin server, registered:
        (server, connector)."""
        cfg = self.write_ingress_config(srv, ep, ingress)
        server = self.gost("-C", cfg, name="server", port=srv)
        self.assertTrue(wait_port(ep, 10.0, proc=server.proc), server.diagnostics())
        origin = self.start_server(OriginServer())
        web = self.connector("tunnel+ws", srv, TID_WEB, origin.addr, name="conn-web")
        self.wait_registered(web)
        return server, web

    def sourced(self, source):
        """An ingress with a configured rule and `source` (YAML), read every second."""
        return ("  rules:\n  - hostname: conf.example.net\n    endpoint: %s\n  reload: 1s\n%s"
                % (TID_WEB, source))

    def test_ingress_file_source_reloads(self):
        """An ingress's `file` (GOST's "hostname endpoint" lines, '#' comments): its rules route
        beside the configured one, and a changed file is read again within its `reload`."""
        srv, ep = free_port(), free_port()
        rules = os.path.join(self.home, "ingress.txt")
        with open(rules, "w") as f:
            f.write("# routes\nfile.example.net %s  # the web app\nlonely.example.net\n" % TID_WEB)
        server, _ = self.ingress_service(srv, ep, self.sourced("  file:\n    path: %s\n" % rules))
        for host in ("conf.example.net", "file.example.net"):
            self.assertEqual(http_status(ep, host).http_code, "200", host)
        self.assertEqual(http_status(ep, "lonely.example.net").http_code, "502")
        with open(rules, "w") as f:
            f.write("*.later.example.net %s\n" % TID_WEB)
        self.assertTrue(wait_until(lambda: http_status(ep, "a.later.example.net").http_code
                                   == "200", 10.0, interval=0.2), server.diagnostics())
        self.assertEqual(http_status(ep, "file.example.net").http_code, "502")
        self.assertEqual(http_status(ep, "conf.example.net").http_code, "200")
        self.assertAlive(server)

    @unittest.skipUnless(test_sources.REDIS_SERVER, "redis-server is not installed (scripts/setup.sh)")
    def test_ingress_redis_hash_source(self):
        """GOST reads an ingress's Redis key as a hash (hostname -> endpoint) unless `type: set`."""
        r = test_sources.RedisServer()
        self.addCleanup(r.close)
        test_sources.redis_cmd(r.port, "HSET", "gost", "redis.example.net", TID_WEB)
        srv, ep = free_port(), free_port()
        server, _ = self.ingress_service(srv, ep,
                                      self.sourced("  redis:\n    addr: 127.0.0.1:%d\n" % r.port))
        self.assertEqual(http_status(ep, "redis.example.net").http_code, "200")
        test_sources.redis_cmd(r.port, "HSET", "gost", "more.example.net", TID_WEB)
        self.assertTrue(wait_until(lambda: http_status(ep, "more.example.net").http_code
                                   == "200", 10.0, interval=0.2), server.diagnostics())
        self.assertAlive(server)

    def test_ingress_http_plugin(self):
        """GOST's ingress plugin of type http: the entrypoint asks GET ?host=H&service=S for each
        Host ({"endpoint": id}, a 200 only), and a connector's registration is told to it with a
        PUT {"service","host","endpoint"}. No answer routes nothing (502)."""
        import http.server
        import json
        import urllib.parse
        seen = {"get": [], "put": []}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                seen["get"].append((self.path, q))
                host = q.get("host", [""])[0]
                if host.startswith("broken."):
                    return self.reply(500, {"endpoint": TID_WEB})
                self.reply(200, {"endpoint": TID_WEB if host.startswith("plugin.") else ""})

            def do_PUT(self):
                n = int(self.headers.get("Content-Length", "0"))
                seen["put"].append(json.loads(self.rfile.read(n)))
                self.reply(200, {"ok": True})

        plug = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        plug.daemon_threads = True
        threading.Thread(target=plug.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        self.addCleanup(plug.server_close)
        self.addCleanup(plug.shutdown)
        srv, ep = free_port(), free_port()
        server, _ = self.ingress_service(srv, ep, "  plugin:\n    type: http\n    addr: "
                                      "http://127.0.0.1:%d/ingress\n" % plug.server_address[1])
        self.assertTrue(wait_until(lambda: len(seen["put"]) >= 1, 5.0), seen)
        # the rule "<endpoint name> -> tunnel ID" (the name: GOST's hash of the ID)
        put = seen["put"][0]
        self.assertEqual((put["service"], put["endpoint"]), ("tunnel", TID_WEB), seen)
        self.assertTrue(put["host"], seen)
        self.assertEqual(http_status(ep, "plugin.example.net").http_code, "200")
        self.assertEqual(http_status(ep, "other.example.net").http_code, "502")
        self.assertEqual(http_status(ep, "broken.example.net").http_code, "502")
        # asked for host:port, as GOST's entrypoint asks (httpRoundTrip adds :80)
        path, q = [g for g in seen["get"] if g[1].get("host") == ["plugin.example.net:80"]][0]
        self.assertEqual((path.split("?")[0], q.get("service")), ("/ingress", ["tunnel"]))
        self.assertAlive(server)

    def test_hostile_input(self):
        """Non-HTTP bytes, a bad request line, a truncated head, a relay request with an unknown
        or no tunnel ID: closed (a relay status where GOST sends one), never a crash."""
        srv, ep, server = self.server("tunnel+ws")
        got, closed = raw_exchange(ep, os.urandom(64).replace(b"\x01", b"\x02").replace(
            b"\x16", b"\x17") + b"\r\n\r\n")
        self.assertEqual((got, closed), (b"", True))
        got, closed = raw_exchange(ep, b"\x00\xff garbage garbage\r\n\r\n")
        self.assertEqual((got, closed), (b"", True))
        got, closed = raw_exchange(ep, b"GET\r\n\r\n")
        self.assertEqual((got, closed), (b"", True))
        # relay CONNECT at the entrypoint with a tunnel nobody registered: Service Unavailable
        unknown = bytes.fromhex("6f" * 16) + b"\x00" * 4
        req = b"\x01\x01\x00\x17" + b"\x03\x00\x14" + unknown
        got, closed = raw_exchange(ep, req)
        self.assertEqual((got, closed), (b"\x01\x05\x00\x00", True))
        # no tunnel ID: Bad Request
        got, closed = raw_exchange(ep, b"\x01\x01\x00\x00")
        self.assertEqual((got, closed), (b"\x01\x01\x00\x00", True))
        # a TLS ClientHello for an unmapped name: closed without a reply
        got, closed = raw_exchange(ep, gostlib.client_hello("nobody.example.org"))
        self.assertEqual((got, closed), (b"", True))
        self.assertAlive(server)

    def test_hostile_input_tunnel_port(self):
        """The tunnel handler's own port (plain tcp): no tunnel ID, a zero ID, CMD 00 (not
        CONNECT here), a bad version → 01 01 00 00; malformed features and garbage: closed
        without a reply; a silent client: closed after readTimeout."""
        port = free_port()
        server = self.gost("-L", "tunnel://127.0.0.1:%d?readTimeout=1s" % port, name="server",
                           port=port)
        tid = bytes.fromhex(TID_ECHO.replace("-", "")) + b"\x00" * 4
        cases = [
            (b"\x01\x01\x00\x00", b"\x01\x01\x00\x00"),
            (b"\x01\x01\x00\x17\x03\x00\x14" + b"\x00" * 20, b"\x01\x01\x00\x00"),
            (b"\x01\x00\x00\x17\x03\x00\x14" + tid, b"\x01\x01\x00\x00"),
            (b"\x02\x01\x00\x00", b"\x01\x01\x00\x00"),
            (b"\x01\x01\x00\x05\x02\x00\x09\x01\x02", b""),
            (b"\x01\x01\x00\x03\x03\x00\x02\x00\x00", b""),
        ]
        for data, want in cases:
            got, closed = raw_exchange(port, data)
            self.assertEqual((got, closed), (want, True), data.hex())
        # a BIND for a tunnel nobody serves yet works; CONNECT to it without a connector: 05
        req = b"\x01\x01\x00\x17\x03\x00\x14" + tid
        got, closed = raw_exchange(port, req)
        self.assertEqual((got, closed), (b"\x01\x06\x00\x00", True))  # no route (no rule)
        start = time.monotonic()
        got, closed = raw_exchange(port, b"\x01\x01", timeout=5)
        self.assertEqual((got, closed), (b"", True))
        self.assertLess(time.monotonic() - start, 4.0)
        self.assertAlive(server)

    def test_relay_visitor_at_entrypoint(self):
        """`-F relay://<entrypoint>?tunnel.id=` (the relay connector's tunnel-id feature): the
        entrypoint's relay path joins it to the tunnel's connector."""
        srv, ep, server = self.server("tunnel+ws")
        echo = self.connector("tunnel+ws", srv, TID_ECHO, self.echo.addr, name="conn-echo")
        self.wait_registered(echo)
        port = free_port()
        self.gost("-L", "tcp://127.0.0.1:%d/echo.example.com:80" % port, "-F",
                  "relay://127.0.0.1:%d?tunnel.id=%s" % (ep, TID_ECHO), name="relay-visitor",
                  port=port)
        self.assertTrue(answers(port, b"via the entrypoint's relay path"))
        self.check_concurrent(port, 20)

    def test_wrong_tunnel_id_visitor(self):
        """A visitor whose tunnel ID does not own the Host: Host Unreachable, nothing relayed."""
        srv, ep, server = self.server("tunnel+ws")
        echo = self.connector("tunnel+ws", srv, TID_ECHO, self.echo.addr, name="conn-echo")
        self.wait_registered(echo)
        vport, v = self.visitor("tunnel+ws", srv, TID_WEB, "echo.example.com:80")
        self.assertFalse(answers(vport))
        self.assertTrue(wait_until(lambda: "no route to host" in server.stderr_text(), 5.0))
        self.assertAlive(server)


class TunnelLoadTest(TunnelBase):

    def test_two_connectors_share(self):
        """Two connectors with one tunnel ID: inbound connections go to both (GOST: weighted
        random)."""
        srv, ep, server = self.server("tunnel+ws")
        a = self.start_server(EchoServer())
        b = self.start_server(EchoServer())
        ca = self.connector("tunnel+ws", srv, TID_ECHO, a.addr, name="conn-a")
        cb = self.connector("tunnel+ws", srv, TID_ECHO, b.addr, name="conn-b")
        self.wait_registered(ca)
        self.wait_registered(cb)
        vport, _ = self.visitor("tunnel+ws", srv, TID_ECHO, "echo.example.com:80")
        for i in range(40):
            self.assertTrue(answers(vport, b"share-%d" % i))
        self.assertTrue(wait_until(lambda: a.connections + b.connections >= 40, 5.0))
        self.assertGreater(a.connections, 4, (a.connections, b.connections))
        self.assertGreater(b.connections, 4, (a.connections, b.connections))

    def test_server_restart(self):
        """The server is killed while the connector runs: it re-registers with back-off
        ('retrying in 1s') once a new server listens, and the tunnel answers again."""
        srv, ep, server = self.server("tunnel+ws")
        echo = self.connector("tunnel+ws", srv, TID_ECHO, self.echo.addr, name="conn-echo")
        self.wait_registered(echo)
        vport, _ = self.visitor("tunnel+ws", srv, TID_ECHO, "echo.example.com:80")
        self.assertTrue(answers(vport))
        server.proc.kill()
        server.proc.wait(10)
        server.expected_exit = True
        time.sleep(1.5)
        self.server("tunnel+ws", port=srv, ep=ep, name="server-2")
        start = time.monotonic()
        self.assertTrue(wait_until(lambda: answers(vport), 12.0, interval=0.1),
                        echo.diagnostics())
        self.assertLess(time.monotonic() - start, 12.0)
        self.assertIn("retrying in 1s", echo.stderr_text())
        self.check_concurrent(vport, 20)
        self.assertAlive(echo)


class TunnelUdpTest(TunnelBase):

    def test_udp_connector(self):
        """A UDP connector (-L rudp -F tunnel://) and UDP visitors speaking the tunnel protocol
        (01 81, network udp, source, destination, tunnel ID; tunnel.direct on the server):
        DNS-like request/response as LEN(2)+DATA frames; five visitors at once each get their
        own answers; then a `-L udp://` forwarder as the visitor (relay connector with
        tunnel.id, UDP CONNECT), as GOST's docs run it."""
        uecho = UdpEchoServer()
        self.addCleanup(uecho.close)
        plain = free_port()
        server2 = self.gost("-L", "tunnel://127.0.0.1:%d?tunnel.direct=true" % plain,
                            name="server-tcp", port=plain)
        c = self.gost("-L", "rudp://:0/127.0.0.1:%d" % uecho.port, "-F",
                      "tunnel://127.0.0.1:%d?tunnel.id=%s" % (plain, TID_UDP), name="conn-udp")
        self.wait_registered(c)
        tid = bytes.fromhex(TID_UDP.replace("-", ""))

        def visitor(i):
            s = socket.create_connection(("127.0.0.1", plain), timeout=5)
            feats = (b"\x04\x00\x02\x00\x01" + addr_feature_v4("127.0.0.1", 40000 + i) +
                     b"\x02\x00\x13\x03\x0fdns.example.com\x00\x35" +
                     b"\x03\x00\x14" + tid + b"\x00\x00\x00\x00")
            s.sendall(b"\x01\x81" + struct.pack(">H", len(feats)) + feats)
            self.assertEqual(recv_exact(s, 4), b"\x01\x00\x00\x00")
            return s

        socks = [visitor(i) for i in range(5)]
        try:
            for i, s in enumerate(socks):
                for k in range(3):
                    q = dns_query(i * 16 + k)
                    s.sendall(struct.pack(">H", len(q)) + q)
            for i, s in enumerate(socks):
                got = []
                for _ in range(3):
                    n = struct.unpack(">H", recv_exact(s, 2))[0]
                    got.append(recv_exact(s, n))
                self.assertEqual(sorted(got), sorted(b"echo:" + dns_query(i * 16 + k)
                                                     for k in range(3)))
        finally:
            for s in socks:
                s.close()
        self.assertIn("/udp: tunnel=%s" % TID_UDP, server2.stderr_text())
        # gost -L udp://:U/dns.example.com:53 -F relay://server?tunnel.id=...: a visitor
        up = udplib.free_udp_port()
        v = self.gost("-L", "udp://127.0.0.1:%d/dns.example.com:53?keepAlive=true" % up, "-F",
                      "relay://127.0.0.1:%d?tunnel.id=%s" % (plain, TID_UDP), name="visitor")
        self.assertTrue(udplib.wait_udp_bound(v.proc, up, 10.0), v.diagnostics())
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(u.close)
        u.settimeout(5)
        for k in range(20):
            q = dns_query(0x4000 + k)
            u.sendto(q, ("127.0.0.1", up))
            self.assertEqual(u.recvfrom(65536)[0], b"echo:" + q, v.diagnostics())
        self.assertAlive(v)
        self.assertAlive(c)
        self.assertAlive(server2)


class ScriptedServer:
    """Accepts one connection, records the request, answers a BIND, then speaks smux v2."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.conn = None

    def accept(self, timeout=15):
        self.lsock.settimeout(timeout)
        self.conn, self.peer = self.lsock.accept()
        self.conn.settimeout(10)

    def read_request(self):
        head = recv_exact(self.conn, 4)
        n = struct.unpack(">H", head[2:4])[0]
        return head + recv_exact(self.conn, n)

    def close(self):
        for s in (self.conn, self.lsock):
            if s:
                s.close()


def addr_feature_v4(host, port):
    return b"\x02\x00\x07\x01" + socket.inet_aton(host) + struct.pack(">H", port)


def smux(ver, cmd, sid, data=b""):
    return struct.pack("<BBHI", ver, cmd, len(data), sid) + data


class TunnelWireTest(TunnelBase):

    def test_bind_bytes_and_smux_v2(self):
        """The connector's BIND is GOST's (relay.md §3-4): 01 02 FEALEN, source address, the bind
        address (':0' as an empty domain), the 20-byte tunnel-id feature; after our response the
        connection is an smux v2 session: a stream we open gets the echo's bytes back, with UPD
        window updates."""
        s = ScriptedServer()
        self.addCleanup(s.close)
        c = self.gost("-L", "rtcp://:0/%s" % self.echo.addr, "-F",
                      "tunnel://127.0.0.1:%d?tunnel.id=%s&tunnel.weight=7" % (s.port, TID_ECHO),
                      name="connector")
        s.accept()
        req = s.read_request()
        tid = bytes.fromhex(TID_ECHO.replace("-", ""))
        feats = (addr_feature_v4("127.0.0.1", s.peer[1]) + b"\x02\x00\x04\x03\x00\x00\x00" +
                 b"\x03\x00\x14" + tid + b"\x00\x00\x00\x07")
        self.assertEqual(req.hex(), (b"\x01\x02" + struct.pack(">H", len(feats)) + feats).hex())
        cid = bytes(range(16)) + b"\x00\x00\x00\x07"
        resp_feats = b"\x02\x00\x14\x03\x10" + b"0123456789abcdef" + b"\x00\x00" + \
            b"\x03\x00\x14" + cid
        s.conn.sendall(b"\x01\x00" + struct.pack(">H", len(resp_feats)) + resp_feats)
        self.assertTrue(wait_until(lambda: "create tunnel on" in c.stderr_text(), 5.0),
                        c.diagnostics())
        self.assertIn("connector=00010203-0405-0607-0809-0a0b0c0d0e0f", c.stderr_text())
        # smux v2: we (the server side of the tunnel) open stream 3
        hf = addr_feature_v4("203.0.113.5", 51000) + b"\x02\x00\x04\x03\x00\x00\x00"
        header = b"\x01\x00" + struct.pack(">H", len(hf)) + hf
        s.conn.sendall(smux(2, 0, 3) + smux(2, 2, 3, header) + smux(2, 2, 3, b"hello v2"))
        got = b""
        upd = []
        deadline = time.monotonic() + 10
        while b"hello v2" not in got and time.monotonic() < deadline:
            hdr = recv_exact(s.conn, 8)
            ver, cmd, length, sid = struct.unpack("<BBHI", hdr)
            data = recv_exact(s.conn, length) if length else b""
            self.assertEqual(ver, 2, (ver, cmd, sid, data))
            if cmd == 2 and sid == 3:
                got += data
            if cmd == 4:
                upd.append((sid, struct.unpack("<II", data)))
        self.assertEqual(got, b"hello v2")
        # the first read of stream 3 is acknowledged: consumed = the bytes read, window 64 KiB
        self.assertTrue(any(sid == 3 and w == 65536 and consumed > 0 for sid, (consumed, w) in upd),
                        upd)
        self.assertTrue(wait_until(lambda: "203.0.113.5:51000" in c.stderr_text(), 5.0),
                        c.stderr_text()[-2000:])


class TunnelConfigTest(TunnelBase):

    def test_yaml_output(self):
        """-O yaml writes the connector as GOST does (connector type tunnel, tunnel.id)."""
        r = run_gost(["-L", "rtcp://:0/192.168.1.10:80", "-F",
                      "tunnel+ws://server.example.com:443?tunnel.id=%s" % TID_WEB, "-O", "yaml"])
        self.assertEqual(r.returncode, 0, r)
        out = r.stdout.decode()
        self.assertIn("type: tunnel", out)
        self.assertIn("tunnel.id: %s" % TID_WEB, out)
        self.assertIn("type: rtcp", out)

    def test_bad_tunnel_id(self):
        """A tunnel.id that is no UUID is refused at start-up, naming it."""
        r = run_gost(["-L", "rtcp://:0/127.0.0.1:80", "-F",
                      "tunnel+ws://127.0.0.1:1?tunnel.id=not-a-uuid"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tunnel.id", r.stderr.decode())


if __name__ == "__main__":
    gostlib.main()
