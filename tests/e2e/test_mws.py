"""mws / mwss: many tunnels over one WebSocket carrying an smux v1 session
(docs/PROTOCOLS.md "ws: mws and mwss").

Our client against our server: curl through a local http proxy, 8 MiB both ways, half-close,
100 concurrent tunnels sharing one WebSocket, a server restart while the client runs, and bad
input on the listener.
Run: /usr/bin/python3 tests/e2e/test_mws.py <path-to-gost>
"""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import transportlib  # noqa: E402
import test_concurrency  # noqa: E402
from gostlib import connect, curl, free_ports, recv_until_close  # noqa: E402

USER, PASS = "user", "pass"


class MwsTest(transportlib.TransportTestCase):

    def pair(self, server_scheme, client_scheme, workers=None):
        front, srv = free_ports(2)
        server = self.start_gost("-L", "%s://%s:%s@127.0.0.1:%d" % (server_scheme, USER, PASS, srv),
                                 port=srv, name="server")
        env = {"GOST_WORKERS": str(workers)} if workers else None
        client = gostlib.start_gost_in(self, "-L", "http://127.0.0.1:%d" % front,
                                       "-F", "%s://%s:%s@127.0.0.1:%d" % (client_scheme, USER, PASS, srv),
                                       port=front, name="client", env_extra=env)
        return front, srv, server, client

    def ws_connections(self, server):
        """Distinct client addresses in the server's per-tunnel log lines: one per WebSocket."""
        return set(re.findall(r'"msg":"(127\.0\.0\.1:\d+) <> ', server.stderr_text()))

    def check_transport(self, scheme):
        front, _, server, _ = self.pair(scheme, scheme)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        self.both_ways_and_half_close(front, scheme)
        self.assertAlive(server)
        # every tunnel went through the server (a client that ignored -F would pass the
        # checks above going direct)
        for target in (self.origin.addr, self.duplex.addr, self.halfsrv.addr):
            self.assert_through(server, target, 1, scheme)

    def test_socks5_mws(self):
        self.check_transport("socks5+mws")

    def test_relay_mwss(self):
        self.check_transport("relay+mwss")

    def test_http_mws(self):
        self.check_transport("http+mws")

    def test_auto_over_mws(self):
        front, srv = free_ports(2)
        self.start_gost("-L", "mws://127.0.0.1:%d" % srv, port=srv, name="server")
        self.start_gost("-L", "http://127.0.0.1:%d" % front, "-F", "socks5+mws://127.0.0.1:%d" % srv,
                        port=front, name="client")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)

    def test_100_concurrent_tunnels_share_one_websocket(self):
        front, _, server, _ = self.pair("relay+mwss", "relay+mwss", workers=1)
        ok, errors, elapsed = self.run_connect_batch(front, 100)
        self.check_batch(ok, errors, elapsed, 100)
        # one client worker → one pooled session → every tunnel on the same WebSocket
        self.assertEqual(len(self.ws_connections(server)), 1, server.stderr_text()[-2000:])

    def test_server_restart_client_reconnects(self):
        front, srv, server, _ = self.pair("socks5+mws", "socks5+mws", workers=1)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "200", r)
        server.stop()
        self.start_gost("-L", "socks5+mws://%s:%s@127.0.0.1:%d" % (USER, PASS, srv), port=srv,
                        name="server-2")
        # the pooled session died with the old server: the next tunnel dials a new one
        deadline = time.monotonic() + 10
        r = None
        while time.monotonic() < deadline:
            r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
            if r.http_code == "200":
                break
            time.sleep(0.2)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)

    def test_wrong_credentials_inside_mws(self):
        front, srv = free_ports(2)
        self.start_gost("-L", "socks5+mws://%s:%s@127.0.0.1:%d" % (USER, PASS, srv), port=srv)
        self.start_gost("-L", "http://127.0.0.1:%d" % front,
                        "-F", "socks5+mws://%s:wrong@127.0.0.1:%d" % (USER, srv), port=front)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "503", r)
        self.assertEqual(self.origin.requests, [])

    def test_bad_input_on_listener(self):
        front, srv, server, _ = self.pair("relay+mws", "relay+mws")
        cases = [
            b"\x16\x03\x01\x00\x05hello",                   # TLS on a plain listener
            b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",          # no upgrade → 400, connection kept
            os.urandom(4096),
        ]
        for payload in cases:
            s = connect(srv)
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                data, closed, _ = recv_until_close(s, timeout=20)
                self.assertTrue(closed, payload[:20])
                if payload.startswith(b"GET"):
                    self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)
            finally:
                s.close()
        # an upgraded WebSocket whose smux session sends garbage frames is dropped
        s = connect(srv)
        try:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            head, _ = gostlib.recv_http_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            junk = b"\x09\x07\x00\x10" + b"\x00" * 12        # smux version 9: invalid
            mask = b"\x01\x02\x03\x04"
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(junk))
            s.sendall(bytes([0x82, 0x80 | len(junk)]) + mask + masked)
            _, closed, _ = recv_until_close(s, timeout=10)
            self.assertTrue(closed, "session with a bad smux frame was not closed")
        finally:
            s.close()
        self.assertAlive(server)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "200", r)


if __name__ == "__main__":
    gostlib.main()
