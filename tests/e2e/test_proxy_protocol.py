"""End-to-end tests of the PROXY protocol (docs/PROTOCOLS.md "PROXY protocol", issue 17 §4).

- A service with proxyProtocol=1: hand-made v1 and v2 headers (IPv4, IPv6, TLVs, LOCAL) before an
  HTTP CONNECT; the header's client address is what the log lines and the metrics' `client` label
  show; a connection without a header is served; a malformed header closes the connection without
  a byte of reply; the bytes after the header reach the handler intact.
- A silent client (or one stuck inside a header) does not delay another connection (measured:
  the second one is answered in well under a second), and is closed after GOST's 10 s.
- Node `proxyProtocol: 1|2`: the next gost sees the first client's address, not ours.
- haproxy (Debian's) in front of gost with `send-proxy` and `send-proxy-v2`: curl through it works
  and gost logs curl's address (curl bound to 127.0.0.2, haproxy connecting from 127.0.0.3); and
  the same under every TCP-based listener (tls, ws, wss, mws, h2, h2c, grpc, http2, pht), with
  gost as the client.

Run: /usr/bin/python3 tests/e2e/test_proxy_protocol.py <path-to-gost>
"""

import http.server
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (EchoServer, GostTestCase, connect, curl, free_ports,  # noqa: E402
                     recv_exact, wait_port)

LOOPBACK = "127.0.0.1"
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                      else None)
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
BODY = b"hello through the PROXY protocol\n"


def v1(src, sport, dst, dport, proto="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def v2(src, sport, dst, dport, command=0x21, tlvs=b""):
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(
            socket.AF_INET6, dst)
    else:
        fam, addrs = 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
    block = addrs + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([command, fam]) + struct.pack("!H", len(block)) + block


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


class HelloServer:
    """A small HTTP server on 127.0.0.1 (the target of the proxied requests)."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), _Hello)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def connect_tunnel(sock, target):
    """CONNECT on `sock` (whatever the caller sent before it); returns the answer's head."""
    req = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode()
    sock.sendall(req)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def scrape(mport):
    with urllib.request.urlopen("http://%s:%d/metrics" % (LOOPBACK, mport), timeout=10) as r:
        return r.read().decode()


def client_requests(text, client):
    m = re.search(r'^gost_service_requests_total\{client="%s",[^}]*\} (\d+)$' % re.escape(client),
                  text, re.M)
    return int(m.group(1)) if m else 0


def msg_remotes(log):
    """The client addresses of the services' connection lines ("<remote> <> <local>")."""
    return re.findall(r'"msg":"([^ "]+) <> ([^ "]+)"', log)


class ServicePP(GostTestCase):
    """A service with proxyProtocol=1, fed by hand-made headers."""

    def setUp(self):
        self.echo = self.start_server(EchoServer())
        self.hello = HelloServer()
        self.addCleanup(self.hello.close)
        self.port, self.mport = free_ports(2)
        self.gost = self.start_gost("-L", "http://%s:%d?proxyProtocol=1" % (LOOPBACK, self.port),
                                    "-metrics", "%s:%d" % (LOOPBACK, self.mport),
                                    ports=[self.port, self.mport])
        self.target = self.echo.addr
        # The connection that saw the port open (no header) is one request from 127.0.0.1.
        deadline = time.time() + 5
        while time.time() < deadline and not msg_remotes(self.gost.stderr_text()):
            time.sleep(0.05)
        self.probes = len(msg_remotes(self.gost.stderr_text()))
        self.base_local = client_requests(scrape(self.mport), LOOPBACK)
        self.assertEqual(self.base_local, self.probes)

    def tunnel(self, header, payload=b"ping"):
        s = connect(self.port)
        try:
            # The header and the request in one segment: the bytes after the header must stay.
            req = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.target, self.target)).encode()
            s.sendall(header + req)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "closed before the CONNECT answer: %r" % head)
                head += chunk
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            s.sendall(payload)
            self.assertEqual(recv_exact(s, len(payload)), payload)
        finally:
            s.close()

    def wait_log(self, pattern, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.gost.stderr_text()):
                return True
            time.sleep(0.05)
        return False

    def test_v1_header_gives_the_client_address(self):
        self.tunnel(v1("203.0.113.7", 40000, "198.51.100.1", 8443), b"x" * 100000)
        # Both addresses of the header replace the socket's in the connection's lines.
        self.assertTrue(self.wait_log(r'"msg":"203\.0\.113\.7:40000 >< 198\.51\.100\.1:8443"'),
                        self.gost.stderr_text()[-3000:])
        self.assertIn('"remote":"203.0.113.7:40000"', self.gost.stderr_text())
        self.assertEqual(client_requests(scrape(self.mport), "203.0.113.7"), 1)
        self.assertEqual(client_requests(scrape(self.mport), LOOPBACK), self.base_local)

    def test_v2_ipv4_ipv6_and_tlvs(self):
        self.tunnel(v2("203.0.113.8", 40001, "198.51.100.1", 443))
        tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x00" + b"\x05\x00\x03abc"
        self.tunnel(v2("2001:db8::5", 40002, "2001:db8::1", 443, tlvs=tlvs))
        self.assertTrue(self.wait_log(r'"msg":"\[2001:db8::5\]:40002 >< \[2001:db8::1\]:443"'))
        self.assertTrue(self.wait_log(r'"msg":"203\.0\.113\.8:40001 >< 198\.51\.100\.1:443"'))
        text = scrape(self.mport)
        self.assertEqual(client_requests(text, "203.0.113.8"), 1)
        self.assertEqual(client_requests(text, "2001:db8::5"), 1)

    def test_local_unknown_and_no_header_keep_the_socket_address(self):
        local = V2_SIG + b"\x20\x00\x00\x00"
        self.tunnel(local)
        self.tunnel(b"PROXY UNKNOWN\r\n")
        self.tunnel(b"")  # no header at all: served as is
        r = curl("http://%s:%d/" % (LOOPBACK, self.hello.port), proxy="http://%s:%d" % (
            LOOPBACK, self.port), tunnel=True)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(r.http_connect, "200")
        self.assertEqual(r.body, BODY)
        deadline = time.time() + 5
        while time.time() < deadline and len(msg_remotes(self.gost.stderr_text())) < 4 + self.probes:
            time.sleep(0.05)
        remotes = msg_remotes(self.gost.stderr_text())
        self.assertEqual(len(remotes), 4 + self.probes, remotes)
        for remote, local_addr in remotes:
            self.assertTrue(remote.startswith("127.0.0.1:"), remotes)
            self.assertEqual(local_addr, "127.0.0.1:%d" % self.port)
        self.assertEqual(client_requests(scrape(self.mport), LOOPBACK), 4 + self.base_local)

    def test_malformed_headers_are_closed_without_reply(self):
        req = ("CONNECT %s HTTP/1.1\r\n\r\n" % self.target).encode()
        bad = [
            b"PROXY TCP4 203.0.113.7 nonsense 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 198.51.100.1 1 2\n",          # no CR
            b"PROXY TCP6 203.0.113.7 198.51.100.1 1 2\r\n",        # family mismatch
            b"PROXY " + b"A" * 120,                                  # no line end in 107 bytes
            V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12,             # version 3
            V2_SIG + b"\x21\x11\x00\x08" + b"\x00" * 8,              # block too short
            V2_SIG + b"\x21\x11\x20\x00",                            # block over 4096 bytes
            v2("203.0.113.7", 1, "198.51.100.1", 2, tlvs=b"\x01\x00\x09ab"),  # TLV overrun
        ]
        for header in bad:
            s = connect(self.port)
            try:
                s.sendall(header + req)
                start = time.time()
                data = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except ConnectionResetError:
                    pass
                self.assertEqual(data, b"", header)
                self.assertLess(time.time() - start, 3, header)
            finally:
                s.close()
        self.assertIn("proxy protocol:", self.gost.stderr_text())
        self.assertEqual(client_requests(scrape(self.mport), LOOPBACK), self.base_local)
        self.tunnel(v1("203.0.113.9", 1, "198.51.100.1", 2))  # still serving
        self.assertAlive(self.gost)

    def test_silent_client_does_not_delay_others(self):
        silent = connect(self.port)
        partial_sig = connect(self.port)
        partial_sig.sendall(b"PRO")  # a signature's prefix: undecided
        partial_hdr = connect(self.port)
        partial_hdr.sendall(V2_SIG + b"\x21\x11\x00\x0c\x01\x02")  # inside a v2 header
        try:
            time.sleep(0.2)
            start = time.time()
            self.tunnel(v1("203.0.113.10", 5, "198.51.100.1", 6))
            elapsed = time.time() - start
            sys.stderr.write("\n  second connection answered in %.3f s\n" % elapsed)
            self.assertLess(elapsed, 1.0)
            # GOST's 10 s: all three are closed then, none answered.
            for s in (silent, partial_sig, partial_hdr):
                s.settimeout(15)
                try:
                    self.assertEqual(s.recv(100), b"")
                except ConnectionResetError:
                    pass
                self.assertLess(time.time() - start, 12.5)
            self.assertGreater(time.time() - start, 9)
        finally:
            for s in (silent, partial_sig, partial_hdr):
                s.close()

    def test_header_split_over_segments(self):
        header = v2("203.0.113.11", 7, "198.51.100.1", 8)
        s = connect(self.port)
        try:
            for i in range(0, len(header), 5):
                s.sendall(header[i:i + 5])
                time.sleep(0.05)
            head = connect_tunnel(s, self.target)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        finally:
            s.close()
        self.assertTrue(self.wait_log(r'"msg":"203\.0\.113\.11:7 <> '))

    def test_tls_listener_header_before_the_handshake(self):
        port = free_ports(1)[0]
        g = self.start_gost("-L", "http+tls://%s:%d?proxyProtocol=1" % (LOOPBACK, port),
                            name="gost-tls", port=port)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = connect(port)
        raw.sendall(v1("203.0.113.12", 9, "198.51.100.1", 10))
        s = ctx.wrap_socket(raw)
        try:
            head = connect_tunnel(s, self.target)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            s.sendall(b"tls!")
            self.assertEqual(recv_exact(s, 4), b"tls!")
        finally:
            s.close()
        deadline = time.time() + 5
        while time.time() < deadline and '"msg":"203.0.113.12:9 <> ' not in g.stderr_text():
            time.sleep(0.05)
        self.assertIn('"msg":"203.0.113.12:9 <> ', g.stderr_text())


class NodePP(GostTestCase):
    """Node/hop proxyProtocol: the next gost sees the first client's address."""

    def run_chain(self, version, node_option):
        echo = self.start_server(EchoServer())
        a, b = free_ports(2)
        gb = self.start_gost("-L", "http://%s:%d?proxyProtocol=1" % (LOOPBACK, b), name="gost-b",
                             port=b)
        self.start_gost("-L", "http://%s:%d" % (LOOPBACK, a),
                        "-F", "http://%s:%d?%s=%d" % (LOOPBACK, b, node_option, version),
                        name="gost-a", port=a)
        s = socket.socket()
        s.bind(("127.0.0.2", 0))  # so that our address differs from gost-a's own
        s.settimeout(10)
        s.connect((LOOPBACK, a))
        ours = "127.0.0.2:%d" % s.getsockname()[1]
        try:
            head = connect_tunnel(s, echo.addr)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            s.sendall(b"chain")
            self.assertEqual(recv_exact(s, 5), b"chain")
        finally:
            s.close()
        deadline = time.time() + 5
        while time.time() < deadline and len(msg_remotes(gb.stderr_text())) < 2:
            time.sleep(0.05)
        # The header: source our address, destination the address we connected to. (Besides it,
        # only the probe that saw gost-b's port open, without a header.)
        remotes = msg_remotes(gb.stderr_text())
        self.assertEqual([r for r in remotes if not r[1].endswith(":%d" % b)],
                         [(ours, "%s:%d" % (LOOPBACK, a))])
        self.assertEqual(len(remotes), 2, remotes)

    def test_node_v2(self):
        self.run_chain(2, "proxyProtocol")

    def test_node_v1(self):
        self.run_chain(1, "proxyProtocol")

    def test_config_errors(self):
        # A multiplexing dialer has no point between dial and handshake: refused by name.
        r = gostlib.run_gost(["-L", "http://127.0.0.1:0", "-F",
                              "http+mws://127.0.0.1:1?proxyProtocol=2"])
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, rb'proxyProtocol is not supported with dialer \\+"mws')
        cfg = self.write_file("c.yaml", "services:\n- name: s\n  addr: 127.0.0.1:0\n"
                              "  handler: {type: http}\n  listener:\n    type: tcp\n"
                              "    metadata: {proxyProtocol: 1}\n")
        r = gostlib.run_gost(["-C", cfg])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"proxyProtocol is a service option", r.stderr)


@unittest.skipUnless(HAPROXY, "haproxy not installed (scripts/setup.sh installs it)")
class BehindHaproxy(GostTestCase):
    """Debian's haproxy in front of gost, mode tcp, send-proxy / send-proxy-v2."""

    def start_haproxy(self, frontends):
        """frontends: [(listen_port, server_port, server_options)]"""
        return gostlib.start_haproxy(self, frontends)

    def test_curl_through_haproxy(self):
        hello = HelloServer()
        self.addCleanup(hello.close)
        g, h1, h2 = free_ports(3)
        gost = self.start_gost("-L", "http://%s:%d?proxyProtocol=1" % (LOOPBACK, g), port=g)
        self.start_haproxy([(h1, g, "send-proxy-v2 source 127.0.0.3"),
                            (h2, g, "send-proxy source 127.0.0.3")])
        url = "http://%s:%d/x" % (LOOPBACK, hello.port)
        for front in (h1, h2):
            r = curl(url, proxy="http://%s:%d" % (LOOPBACK, front),
                     extra=["--interface", "127.0.0.2"])
            self.assertEqual(r.rc, 0, r.stderr)
            self.assertEqual(r.http_code, "200")
            self.assertEqual(r.body, BODY)
        # Besides the probes that saw the ports open (from 127.0.0.1), exactly curl's two
        # connections: curl's address from the header, haproxy's frontend as the destination;
        # never haproxy's own 127.0.0.3.
        def curls():
            return [r for r in msg_remotes(gost.stderr_text()) if r[0].startswith("127.0.0.2:")]
        deadline = time.time() + 5
        while time.time() < deadline and len(curls()) < 2:
            time.sleep(0.05)
        self.assertEqual(len(curls()), 2, msg_remotes(gost.stderr_text()))
        self.assertEqual(sorted(local for _, local in curls()),
                         sorted("%s:%d" % (LOOPBACK, p) for p in (h1, h2)))
        self.assertNotIn("127.0.0.3", gost.stderr_text())

    def test_every_tcp_listener(self):
        hello = HelloServer()
        self.addCleanup(hello.close)
        # (listener scheme on the last gost, node scheme on the first)
        cases = [("http+tls", "http+tls"), ("http+ws", "http+ws"), ("http+wss", "http+wss"),
                 ("http+mws", "http+mws"), ("http+mwss", "http+mwss"), ("http+h2", "http+h2"),
                 ("http+h2c", "http+h2c"), ("http+grpc", "http+grpc"), ("http2", "http2"),
                 ("http+pht", "http+pht"), ("socks5+tls", "socks5+tls")]
        ports = free_ports(3 * len(cases))
        frontends = []
        for i, (listen, node) in enumerate(cases):
            a, h, b = ports[3 * i:3 * i + 3]
            frontends.append((h, b, "send-proxy-v2 source 127.0.0.3"))
        self.start_haproxy(frontends)
        url = "http://%s:%d/y" % (LOOPBACK, hello.port)
        for i, (listen, node) in enumerate(cases):
            a, h, b = ports[3 * i:3 * i + 3]
            with self.subTest(listener=listen):
                last = self.start_gost("-L", "%s://%s:%d?proxyProtocol=1" % (listen, LOOPBACK, b),
                                       name="gost-" + listen, port=b)
                self.start_gost("-L", "http://%s:%d" % (LOOPBACK, a),
                                "-F", "%s://%s:%d" % (node, LOOPBACK, h),
                                name="gost-client-" + listen, port=a)
                r = curl(url, proxy="http://%s:%d" % (LOOPBACK, a))
                self.assertEqual(r.rc, 0, r.stderr)
                self.assertEqual(r.http_code, "200")
                self.assertEqual(r.body, BODY)
                # Through haproxy: the first gost's address (from the header) and haproxy's
                # frontend; never haproxy's own 127.0.0.3. (The probe that saw the port open came
                # without haproxy, and without a header.)
                def proxied():
                    return [r for r in msg_remotes(last.stderr_text())
                            if r[1] == "%s:%d" % (LOOPBACK, h)]
                deadline = time.time() + 5
                while time.time() < deadline and not proxied():
                    time.sleep(0.05)
                self.assertTrue(proxied(), last.stderr_text()[-2000:])
                for remote, _ in msg_remotes(last.stderr_text()):
                    self.assertTrue(remote.startswith("127.0.0.1:"), remote)
                self.assertNotIn("127.0.0.3", last.stderr_text())


if __name__ == "__main__":
    gostlib.main()
