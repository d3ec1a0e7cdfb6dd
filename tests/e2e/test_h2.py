"""h2 / h2c data channels (docs/PROTOCOLS.md "h2"): one HTTP/2 stream per tunnel, the proxy protocol
inside it.

Our client against our server: curl through a local http proxy, 8 MiB both ways, half-close,
100 concurrent tunnels sharing one connection, a server restart while the client runs, the `path`
option. Python's h2 (Debian python3-h2) as an independent client: CONNECT stream + socks5 inside,
the 405/400 answers of "h2: server", oversized headers (431). Bad input on the listener.
Run: /usr/bin/python3 tests/e2e/test_h2.py <path-to-gost>
"""

import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import transportlib  # noqa: E402
import test_concurrency  # noqa: E402
from gostlib import connect, curl, free_ports, recv_until_close  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402

USER, PASS = "user", "pass"


class H2Client:
    """A minimal independent HTTP/2 client (python3-h2) over one socket."""

    def __init__(self, port, tls=False, settings=None):
        sock = connect(port)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock)
            assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                                                         header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.headers = {}
        self.data = {}
        self.ended = set()
        self.resets = {}
        self.goaway = None

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self, until, timeout=10):
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("h2 client: condition not met")
            self.sock.settimeout(left)
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("h2 client: connection closed")
            for ev in self.conn.receive_data(d):
                if isinstance(ev, h2.events.ResponseReceived):
                    self.headers[ev.stream_id] = ev.headers
                elif isinstance(ev, h2.events.DataReceived):
                    self.data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    self.ended.add(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    self.resets[ev.stream_id] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev.error_code
            self.flush()

    def request(self, headers, end_stream=False):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return sid

    def response(self, sid, timeout=10):
        self.pump(lambda: sid in self.headers or sid in self.resets, timeout)
        return dict(self.headers.get(sid, {}))

    def send(self, sid, data):
        self.conn.send_data(sid, data)
        self.flush()

    def recv(self, sid, n, timeout=10):
        self.pump(lambda: len(self.data.get(sid, b"")) >= n, timeout)
        out = bytes(self.data[sid][:n])
        del self.data[sid][:n]
        return out

    def close(self):
        self.sock.close()


class H2Test(transportlib.TransportTestCase):

    def pair(self, server_scheme, client_scheme, workers=None, auth=True, query=""):
        front, srv = free_ports(2)
        cred = "%s:%s@" % (USER, PASS) if auth else ""
        server = self.start_gost("-L", "%s://%s127.0.0.1:%d%s" % (server_scheme, cred, srv, query),
                                 port=srv, name="server")
        env = {"GOST_WORKERS": str(workers)} if workers else None
        client = gostlib.start_gost_in(self, "-L", "http://127.0.0.1:%d" % front,
                                       "-F", "%s://%s127.0.0.1:%d%s" % (client_scheme, cred, srv, query),
                                       port=front, name="client", env_extra=env)
        return front, srv, server, client

    def connections(self, server):
        """Distinct client addresses in the server's per-tunnel log lines: one per connection."""
        return set(re.findall(r'"msg":"(127\.0\.0\.1:\d+) <> ', server.stderr_text()))

    def check_transport(self, scheme, query=""):
        front, _, server, _ = self.pair(scheme, scheme, query=query)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        self.both_ways_and_half_close(front, scheme)
        self.assertAlive(server)
        # every tunnel went through the server (a client that ignored -F would pass the
        # checks above going direct)
        for target in (self.origin.addr, self.duplex.addr, self.halfsrv.addr):
            self.assert_through(server, target, 1, scheme)

    # -- our client, our server ---------------------------------------------

    def test_socks5_h2c(self):
        self.check_transport("socks5+h2c")

    def test_socks5_h2(self):
        self.check_transport("socks5+h2")

    def test_relay_h2c(self):
        self.check_transport("relay+h2c")

    def test_http_h2(self):
        self.check_transport("http+h2")

    def test_relay_h2c_with_path(self):
        self.check_transport("relay+h2c", query="?path=/tun")

    def test_auto_over_h2c(self):
        front, srv = free_ports(2)
        self.start_gost("-L", "h2c://127.0.0.1:%d" % srv, port=srv, name="server")
        self.start_gost("-L", "http://127.0.0.1:%d" % front, "-F", "socks5+h2c://127.0.0.1:%d" % srv,
                        port=front, name="client")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)

    def test_path_mismatch_fails_the_dial(self):
        front, srv = free_ports(2)
        self.start_gost("-L", "relay+h2c://127.0.0.1:%d?path=/tun" % srv, port=srv, name="server")
        self.start_gost("-L", "http://127.0.0.1:%d" % front, "-F", "relay+h2c://127.0.0.1:%d" % srv,
                        port=front, name="client")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "503", r)
        self.assertEqual(self.origin.requests, [])

    def test_100_concurrent_tunnels_share_one_connection(self):
        front, _, server, _ = self.pair("relay+h2c", "relay+h2c", workers=1)
        ok, errors, elapsed = self.run_connect_batch(front, 100)
        self.check_batch(ok, errors, elapsed, 100)
        # one client worker → one pooled session → every tunnel on the same connection
        self.assertEqual(len(self.connections(server)), 1, server.stderr_text()[-2000:])

    def test_stream_limit_opens_a_second_connection(self):
        front, srv = free_ports(2)
        server = self.start_gost("-L", "relay+h2c://127.0.0.1:%d?http2.maxConcurrentStreams=10" % srv,
                                 port=srv, name="server")
        gostlib.start_gost_in(self, "-L", "http://127.0.0.1:%d" % front,
                              "-F", "relay+h2c://127.0.0.1:%d" % srv, port=front, name="client",
                              env_extra={"GOST_WORKERS": "1"})
        ok, errors, elapsed = self.run_connect_batch(front, 30)
        self.check_batch(ok, errors, elapsed, 30)
        self.assertGreaterEqual(len(self.connections(server)), 3, server.stderr_text()[-2000:])

    def test_stream_limit_with_late_server_settings(self):
        """The server's SETTINGS (maxConcurrentStreams=10) arrive 300 ms after the client's
        preface: a client that opened streams before knowing the limit would have 30 of 40
        refused, then 20 on its next session, 10 on the third — tunnels out of retries. The
        session is used only once the server's SETTINGS arrived (net/http2_tls.cpp)."""
        front, srv = free_ports(2)
        server = self.start_gost("-L", "relay+h2c://127.0.0.1:%d?http2.maxConcurrentStreams=10" % srv,
                                 port=srv, name="server")
        slow = gostlib.TapProxy(srv, reply_delay=0.3)
        self.addCleanup(slow.close)
        gostlib.start_gost_in(self, "-L", "http://127.0.0.1:%d" % front,
                              "-F", "relay+h2c://127.0.0.1:%d" % slow.port, port=front,
                              name="client", env_extra={"GOST_WORKERS": "1"})
        ok, errors, elapsed = self.run_connect_batch(front, 40)
        self.check_batch(ok, errors, elapsed, 40)
        self.assertGreaterEqual(len(self.connections(server)), 4, server.stderr_text()[-2000:])

    def test_server_restart_client_reconnects(self):
        front, srv, server, _ = self.pair("socks5+h2c", "socks5+h2c", workers=1)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "200", r)
        server.stop()
        self.start_gost("-L", "socks5+h2c://%s:%s@127.0.0.1:%d" % (USER, PASS, srv), port=srv,
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

    def test_wrong_credentials_inside_h2(self):
        front, srv = free_ports(2)
        self.start_gost("-L", "socks5+h2://%s:%s@127.0.0.1:%d" % (USER, PASS, srv), port=srv)
        self.start_gost("-L", "http://127.0.0.1:%d" % front,
                        "-F", "socks5+h2://%s:wrong@127.0.0.1:%d" % (USER, srv), port=front)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "503", r)
        self.assertEqual(self.origin.requests, [])

    # -- an independent client (python3-h2) ---------------------------------

    def socks5_inside(self, c, sid):
        """SOCKS5 (no auth) CONNECT to the echo server inside stream `sid`, then an echo."""
        c.send(sid, b"\x05\x01\x00")
        self.assertEqual(c.recv(sid, 2), b"\x05\x00")
        host, port = self.echo.addr.rsplit(":", 1)
        c.send(sid, b"\x05\x01\x00\x01" + socket.inet_aton(host) + int(port).to_bytes(2, "big"))
        reply = c.recv(sid, 10)
        self.assertEqual(reply[:2], b"\x05\x00", reply)
        payload = os.urandom(100000)
        c.send(sid, payload[:50000])
        c.send(sid, payload[50000:])
        self.assertEqual(c.recv(sid, len(payload)), payload)

    def check_independent(self, tls):
        srv = free_ports(1)[0]
        scheme = "socks5+h2" if tls else "socks5+h2c"
        server = self.start_gost("-L", "%s://127.0.0.1:%d" % (scheme, srv), port=srv, name="server")
        c = H2Client(srv, tls=tls)
        try:
            sid = c.request([(":method", "CONNECT"), (":authority", "127.0.0.1:%d" % srv)])
            h = c.response(sid)
            self.assertEqual(h.get(":status"), "200", h)
            self.assertIn("date", h)
            self.socks5_inside(c, sid)
            # a second tunnel on the same connection
            sid2 = c.request([(":method", "CONNECT"), (":authority", "127.0.0.1:%d" % srv)])
            self.assertEqual(c.response(sid2).get(":status"), "200")
            self.socks5_inside(c, sid2)
            # half-close: END_STREAM from us → the echo server sees EOF → the stream ends
            c.conn.end_stream(sid2)
            c.flush()
            c.pump(lambda: sid2 in c.ended or sid2 in c.resets)
            # without `path` only CONNECT: GET → 405, the connection stays
            sid3 = c.request([(":method", "GET"), (":path", "/"), (":scheme", "http"),
                              (":authority", "x")], end_stream=True)
            h = c.response(sid3)
            self.assertEqual((h.get(":status"), h.get("content-length")), ("405", "0"), h)
            self.assertIn("date", h)
            # the first tunnel still works
            c.send(sid, b"ping")
            self.assertEqual(c.recv(sid, 4), b"ping")
        finally:
            c.close()
        self.assertAlive(server)

    def test_python_h2_client_h2c(self):
        self.check_independent(False)

    def test_python_h2_client_h2(self):
        self.check_independent(True)

    def test_python_h2_client_path(self):
        srv = free_ports(1)[0]
        self.start_gost("-L", "socks5+h2c://127.0.0.1:%d?path=/tun" % srv, port=srv, name="server")
        c = H2Client(srv)
        try:
            base = [(":scheme", "http"), (":authority", "127.0.0.1:%d" % srv)]
            sid = c.request([(":method", "GET"), (":path", "/tun?x")] + base, end_stream=True)
            self.assertEqual(c.response(sid).get(":status"), "400")
            sid = c.request([(":method", "CONNECT"), (":authority", "127.0.0.1:%d" % srv)])
            self.assertEqual(c.response(sid).get(":status"), "400")
            sid = c.request([(":method", "GET"), (":path", "/tun")] + base)
            self.assertEqual(c.response(sid).get(":status"), "200")
            self.socks5_inside(c, sid)
        finally:
            c.close()

    def test_h2c_upgrade_and_prior_knowledge_with_curl(self):
        srv = free_ports(1)[0]
        server = self.start_gost("-L", "socks5+h2c://127.0.0.1:%d?path=/tun" % srv, port=srv,
                                 name="server")
        url = "http://127.0.0.1:%d" % srv
        for flag in ("--http2", "--http2-prior-knowledge"):
            # the upgraded request is stream 1; it has no body, so the tunnel ends at once
            r = curl(url + "/tun", extra=(flag,))
            self.assertEqual((r.rc, r.http_code, r.body), (0, "200", b""), (flag, r))
            r = curl(url + "/other", extra=(flag,))
            self.assertEqual(r.http_code, "400", (flag, r))
        # the exact 101 of docs/PROTOCOLS.md "h2: server", then HTTP/2 from the server
        s = connect(srv)
        try:
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            settings = c.initiate_upgrade_connection()
            s.sendall(b"GET /tun HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n")
            head, rest = gostlib.recv_http_head(s)
            self.assertEqual(head, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                   b"Upgrade: h2c\r\n\r\n")
        finally:
            s.close()
        self.assertAlive(server)

    # -- bad input ----------------------------------------------------------

    def test_bad_input_on_listener(self):
        front, srv, server, _ = self.pair("relay+h2c", "relay+h2c")
        cases = [
            b"\x16\x03\x01\x00\x05hello",                # TLS on a cleartext listener
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",         # HTTP/1.1, no upgrade
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(4096),  # preface, then garbage
            os.urandom(4096),
        ]
        for payload in cases:
            s = connect(srv)
            try:
                s.sendall(payload)
                _, closed, _ = recv_until_close(s, timeout=20)
                self.assertTrue(closed, payload[:20])
            finally:
                s.close()
        # a silent connection is dropped after the handshake timeout (15 s) — not waited for here
        # oversized request head → 431, the connection stays
        c = H2Client(srv)
        try:
            big = [("x-big-%d" % i, "v" * 8000) for i in range(12)]
            sid = c.request([(":method", "CONNECT"), (":authority", "x:1")] + big)
            h = c.response(sid)
            self.assertEqual(h.get(":status"), "431", h)
            sid = c.request([(":method", "CONNECT"), (":authority", "x:1")])
            self.assertEqual(c.response(sid).get(":status"), "200")
        finally:
            c.close()
        # a PING flood is answered with GOAWAY(ENHANCE_YOUR_CALM) and the connection ends
        c = H2Client(srv)
        try:
            for i in range(3000):
                c.conn.ping(b"%08d" % i)
            c.flush()
            try:
                c.pump(lambda: c.goaway is not None, timeout=10)
            except ConnectionError:
                pass
            self.assertEqual(c.goaway, 11)  # ENHANCE_YOUR_CALM
        finally:
            c.close()
        # a SETTINGS flood, and a rapid-reset flood (open a stream, RST it, thousands of times:
        # CVE-2023-44487): a GOAWAY, the connection ends, the process serves on
        floods = {
            "SETTINGS": lambda c, i: c.conn.update_settings({0x4: 65535 + (i % 7)}),
            "rapid reset": lambda c, i: (
                c.conn.send_headers(c.conn.get_next_available_stream_id(),
                                    [(":method", "CONNECT"), (":authority", "x:1")]),
                c.conn.reset_stream(c.conn.highest_outbound_stream_id, 8)),
        }
        for name, frame in floods.items():
            c = H2Client(srv)
            # How the connection ended: a GOAWAY, or the server closed it (EOF, or a reset, in
            # which its GOAWAY may be lost). A timeout — the server read on and ignored the
            # flood — is none of these: socket.timeout is an OSError (TimeoutError) but not a
            # ConnectionError, and it fails the test.
            ended = None
            try:
                try:
                    for i in range(3000):
                        frame(c, i)
                        if i % 100 == 99:
                            c.flush()
                    c.flush()
                except ConnectionError as e:  # reset / broken pipe while sending
                    ended = repr(e)
                except TimeoutError:
                    self.fail("%s flood: the server stopped reading (send timed out) and did not "
                              "end the connection" % name)
                if ended is None:
                    try:
                        c.pump(lambda: c.goaway is not None, timeout=10)
                    except ConnectionError as e:  # EOF ("connection closed") or a reset
                        ended = repr(e)
                    except TimeoutError:
                        self.fail("%s flood: no GOAWAY and no close within 10 s (the flood was "
                                  "ignored)" % name)
                    except h2.exceptions.ProtocolError:  # h2 refuses to go on once closed
                        if c.goaway is None:
                            raise
                # ENHANCE_YOUR_CALM from our flood limit; nghttp2's own rapid-reset limit (the
                # CVE-2023-44487 fix Debian carries) ends the session with INTERNAL_ERROR first
                self.assertTrue(c.goaway in (11, 2) or (c.goaway is None and ended is not None),
                                "%s: goaway=%r ended=%r" % (name, c.goaway, ended))
            finally:
                c.close()
        self.assertAlive(server)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "200", r)


if __name__ == "__main__":
    gostlib.main()
