"""http2 proxy mode (docs/PROTOCOLS.md "http2"): every HTTP/2 request on a TLS connection is one
proxy request — CONNECT tunnels (RFC 9113 §8.5) and plain requests forwarded in HTTP/1.1 form.

Our client against our server (the seed pair `-L http2://user:pass@:8443` and
`-L http://:8000 -F http2://user:pass@server:8443`): curl through the local http proxy, wrong
credentials, 8 MiB both ways, half-close, 100 concurrent tunnels over one connection. Python's h2
(Debian python3-h2) as an independent client: CONNECT (200, then bytes), 407 without credentials
with its exact header set, a plain GET, CONNECT without :authority. Bad input on the listener. (curl
--proxy-http2: test_http2_curl.py.)
Run: /usr/bin/python3 tests/e2e/test_http2.py <path-to-gost>
"""

import base64
import http.server
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import transportlib  # noqa: E402
import test_concurrency  # noqa: E402
import test_integrity  # noqa: E402
from gostlib import basic, connect, curl, free_ports, recv_exact, recv_until_close  # noqa: E402
from test_h2 import H2Client  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402

USER, PASS = "user", "pass"


def gost_target(hostport):
    """docs/PROTOCOLS.md "http: request and target":
    base64url_nopad(CRC32(h) big-endian + base64url_nopad(h))."""
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")
    h = hostport.encode()
    return b64(zlib.crc32(h).to_bytes(4, "big") + b64(h)).decode()


class _PostEchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers a POST with the body it received (Content-Length or chunked) and how it came."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body, how = b"", "chunked"
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                body += self.rfile.read(size + 2)[:size]  # the final "0\r\n\r\n" too
                if size == 0:
                    break
        else:
            how = "length"
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Body", how)
        self.send_header("X-Host", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(body)


class PostEchoServer(gostlib._BaseServer):
    def __init__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PostEchoHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()


class CapturingH2Server:
    """A python3-h2 server over TLS (ALPN h2) that records each request head and its stream's
    resets, and answers every request with `status` (empty body, stream ended)."""

    def __init__(self, directory, status):
        cert, key = gostlib.make_self_signed(directory, "h2srv", "localhost")
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["h2"])
        self.status = status
        self.requests = []
        self.resets = {}
        self.alpn = []
        self.errors = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                raw, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_one, args=(raw,), daemon=True).start()

    def serve_one(self, raw):
        s = raw
        try:
            raw.settimeout(15)
            s = self.ctx.wrap_socket(raw, server_side=True)
            self.alpn.append(s.selected_alpn_protocol())
            conn = h2.connection.H2Connection(h2.config.H2Configuration(
                client_side=False, header_encoding="utf-8", validate_inbound_headers=False))
            conn.initiate_connection()
            s.sendall(conn.data_to_send())
            while True:
                d = s.recv(65536)
                if not d:
                    return
                for ev in conn.receive_data(d):
                    if isinstance(ev, h2.events.RequestReceived):
                        self.requests.append(list(ev.headers))
                        conn.send_headers(ev.stream_id, [(":status", str(self.status)),
                                                         ("content-length", "0")], end_stream=True)
                    elif isinstance(ev, h2.events.StreamReset):
                        self.resets[ev.stream_id] = ev.error_code
                s.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError) as e:
            self.errors.append(repr(e))
        finally:
            s.close()

    def close(self):
        self.lsock.close()


class Http2Test(transportlib.TransportTestCase):

    def server(self, query=""):
        srv = free_ports(1)[0]
        g = self.start_gost("-L", "http2://%s:%s@127.0.0.1:%d%s" % (USER, PASS, srv, query),
                            port=srv, name="server")
        return srv, g

    def pair(self, password=PASS, workers=None):
        srv, server = self.server()
        front = free_ports(1)[0]
        env = {"GOST_WORKERS": str(workers)} if workers else None
        client = gostlib.start_gost_in(self, "-L", "http://127.0.0.1:%d" % front,
                                       "-F", "http2://%s:%s@127.0.0.1:%d" % (USER, password, srv),
                                       port=front, name="client", env_extra=env)
        return front, srv, server, client

    def connections(self, server):
        """Distinct client addresses in the server's per-request log lines: one per connection."""
        return set(re.findall(r'"msg":"(127\.0\.0\.1:\d+) <> ', server.stderr_text()))

    # -- our client, our server ---------------------------------------------

    def test_gost_target_golden(self):
        self.assertEqual(gost_target("example.com:443"), "T2WmIFpYaGhiWEJzWlM1amIyMDZORFF6")

    def test_seed_pair(self):
        front, _, server, _ = self.pair()
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        self.both_ways_and_half_close(front, "http2")
        self.assertAlive(server)

    def test_wrong_credentials(self):
        front, _, server, _ = self.pair(password="wrong")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "503", r)
        self.assertEqual(self.origin.requests, [])
        self.assertIn("authentication failed", server.stderr_text())

    def test_100_concurrent_tunnels_share_one_connection(self):
        front, _, server, _ = self.pair(workers=1)
        ok, errors, elapsed = self.run_connect_batch(front, 100)
        self.check_batch(ok, errors, elapsed, 100)
        # one client worker → one pooled session → every tunnel on the same connection
        self.assertEqual(len(self.connections(server)), 1, server.stderr_text()[-2000:])

    def test_server_restart_client_reconnects(self):
        front, srv, server, _ = self.pair(workers=1)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "200", r)
        server.stop()
        self.start_gost("-L", "http2://%s:%s@127.0.0.1:%d" % (USER, PASS, srv), port=srv,
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

    def test_two_http2_hops(self):
        """The second node is reached through a CONNECT stream of the first: TLS and a session
        of its own inside that stream (dialer handshake())."""
        srv1, s1 = self.server()
        srv2, s2 = self.server()
        front = free_ports(1)[0]
        self.start_gost("-L", "http://127.0.0.1:%d" % front,
                        "-F", "http2://%s:%s@127.0.0.1:%d" % (USER, PASS, srv1),
                        "-F", "http2://%s:%s@127.0.0.1:%d" % (USER, PASS, srv2), port=front,
                        name="client")
        for _ in range(3):
            r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
            self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        s = test_integrity.open_connect_tunnel(self, front, self.duplex.addr)
        try:
            self.duplex_exchange(s, "http2 two hops")
        finally:
            s.close()
        self.assertIn("127.0.0.1:%d" % srv2, s1.stderr_text())
        self.assertAlive(s1)
        self.assertAlive(s2)

    def test_connector_request_head_to_independent_server(self):
        """Our connector against a python3-h2 server: the exact CONNECT head of
        docs/PROTOCOLS.md "http2: client"; a 407 fails the dial (503 to the user) and the stream is
        cancelled."""
        d = tempfile.mkdtemp(prefix="gost-e2e-http2-")
        self.addCleanup(shutil.rmtree, d, True)
        srv = CapturingH2Server(d, 407)
        self.addCleanup(srv.close)
        front = free_ports(1)[0]
        self.start_gost("-L", "http://127.0.0.1:%d" % front,
                        "-F", "http2://%s:%s@127.0.0.1:%d" % (USER, PASS, srv.port), port=front,
                        name="client")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "503", r)
        self.assertEqual(srv.alpn, ["h2"])
        self.assertTrue(srv.requests)
        self.assertEqual(srv.requests[0], [
            (":authority", self.origin.addr), (":method", "CONNECT"),
            ("proxy-authorization", basic(USER, PASS)), ("accept-encoding", "gzip"),
            ("user-agent", "Go-http-client/2.0")])
        deadline = time.monotonic() + 5
        while 1 not in srv.resets and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(srv.resets.get(1), 8)  # CANCEL, as Go's client ends a failed CONNECT

    # -- an independent client (python3-h2) ---------------------------------

    def test_python_h2_connect(self):
        srv, server = self.server()
        c = H2Client(srv, tls=True)
        try:
            # no credentials: 407 with GOST's header set, each header once; the connection stays
            sid = c.request([(":method", "CONNECT"), (":authority", self.echo.addr)])
            c.response(sid)
            h = c.headers[sid]
            self.assertEqual([n for n, _ in h], [":status", "proxy-authenticate", "content-length",
                                                "date"], h)
            self.assertEqual(h[:3], [(":status", "407"), ("proxy-authenticate", 'Basic realm="gost"'),
                                     ("content-length", "0")], h)
            c.pump(lambda: sid in c.ended)
            # wrong password: 407 as well
            sid = c.request([(":method", "CONNECT"), (":authority", self.echo.addr),
                             ("proxy-authorization", basic(USER, "nope"))])
            self.assertEqual(c.response(sid).get(":status"), "407")
            # credentials: 200 (date only), then bytes both ways through the echo server
            auth = ("proxy-authorization", basic(USER, PASS))
            sid = c.request([(":method", "CONNECT"), (":authority", self.echo.addr), auth])
            c.response(sid)
            h = c.headers[sid]
            self.assertEqual([n for n, _ in h], [":status", "date"], h)
            self.assertEqual(h[0], (":status", "200"))
            payload = os.urandom(200000)
            for i in range(0, len(payload), 16384):
                c.send(sid, payload[i:i + 16384])
            self.assertEqual(c.recv(sid, len(payload)), payload)
            # half-close: END_STREAM → the echo server sees EOF → the response ends
            c.conn.end_stream(sid)
            c.flush()
            c.pump(lambda: sid in c.ended or sid in c.resets)
            self.assertIn(sid, c.ended)
            # Gost-Target overrides :authority (docs/PROTOCOLS.md "http: request and target")
            tgt = gost_target(self.echo.addr)
            sid = c.request([(":method", "CONNECT"), (":authority", "unused.invalid:1"), auth,
                             ("gost-target", tgt)])
            self.assertEqual(c.response(sid).get(":status"), "200")
            c.send(sid, b"ping")
            self.assertEqual(c.recv(sid, 4), b"ping")
            # an unreachable target: 503, empty body
            dead = free_ports(1)[0]
            sid = c.request([(":method", "CONNECT"), (":authority", "127.0.0.1:%d" % dead), auth])
            h = c.response(sid, timeout=30)
            self.assertEqual((h.get(":status"), h.get("content-length")), ("503", "0"), h)
            # a plain GET is forwarded in HTTP/1.1 form (an explicit port: "http2: server")
            sid = c.request([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                             (":authority", self.origin.addr), auth], end_stream=True)
            h = c.response(sid)
            self.assertEqual(h.get(":status"), "200", h)
            c.pump(lambda: sid in c.ended)
            self.assertEqual(bytes(c.data.get(sid, b"")), self.origin.body)
            sid = c.request([(":method", "GET"), (":scheme", "http"), (":path", "/chunked"),
                             (":authority", self.origin.addr), auth], end_stream=True)
            self.assertEqual(c.response(sid).get(":status"), "200")
            c.pump(lambda: sid in c.ended)
            self.assertEqual(bytes(c.data.get(sid, b"")), self.origin.chunked_body)
        finally:
            c.close()
        self.assertAlive(server)

    def test_python_h2_plain_post(self):
        """A non-CONNECT request with a body, forwarded in HTTP/1.1 form ("http2: server")."""
        post = self.start_server(PostEchoServer())
        srv, server = self.server()
        c = H2Client(srv, tls=True)
        auth = ("proxy-authorization", basic(USER, PASS))
        try:
            body = os.urandom(40000)
            for length in (True, False):
                head = [(":method", "POST"), (":scheme", "https"), (":path", "/up"),
                        (":authority", post.addr), auth]
                if length:
                    head.append(("content-length", str(len(body))))
                sid = c.request(head)
                for i in range(0, len(body), 16384):
                    c.send(sid, body[i:i + 16384])
                c.conn.end_stream(sid)
                c.flush()
                h = c.response(sid)
                self.assertEqual(h.get(":status"), "201", h)
                self.assertEqual(h.get("x-body"), "length" if length else "chunked", h)
                self.assertEqual(h.get("x-host"), post.addr, h)
                c.pump(lambda: sid in c.ended)
                self.assertEqual(bytes(c.data.get(sid, b"")), body)
        finally:
            c.close()
        self.assertAlive(server)

    def test_mismatched_connector_and_dialer_refused_at_start(self):
        """Dialer http2 carries only connector http2 (it yields HTTP/2 sessions, not a byte
        stream): `-F relay+http2://` once failed every tunnel with 0 bytes and no error line; it is
        now refused at start-up with one line naming the pair (so is connector http2 on h2)."""
        for node in ("relay+http2://127.0.0.1:1", "socks5+http2://127.0.0.1:1",
                     "http2+h2://127.0.0.1:1"):
            cp = gostlib.run_gost(["-L", "tcp://127.0.0.1:0/127.0.0.1:1", "-F", node])
            self.assertNotEqual(cp.returncode, 0, node)
            err = (cp.stderr + cp.stdout).decode(errors="replace")
            self.assertIn("the HTTP/2 proxy mode pairs connector http2 with dialer http2", err, node)

    def test_credentials_without_colon_are_empty(self):
        """docs/PROTOCOLS.md "http2: server": for this handler `Basic base64("abc")` is empty/empty,
        so a user `abc` with an empty password is rejected for it and accepted for `abc:`."""
        srv = free_ports(1)[0]
        server = self.start_gost("-L", "http2://abc:@127.0.0.1:%d" % srv, port=srv, name="server")
        c = H2Client(srv, tls=True)
        try:
            for value, status in (("Basic YWJj", "407"), ("Basic YWJjOg==", "200")):
                sid = c.request([(":method", "CONNECT"), (":authority", self.echo.addr),
                                 ("proxy-authorization", value)])
                self.assertEqual(c.response(sid).get(":status"), status, value)
        finally:
            c.close()
        self.assertAlive(server)

    def test_probe_resist_code_and_knock(self):
        srv, server = self.server("?probeResist=code:404&knock=knock.example")
        c = H2Client(srv, tls=True)
        try:
            sid = c.request([(":method", "CONNECT"), (":authority", self.echo.addr)])
            c.response(sid)
            self.assertEqual([n for n, _ in c.headers[sid]], [":status", "content-length", "date"])
            self.assertEqual(dict(c.headers[sid])[":status"], "404")
            sid = c.request([(":method", "CONNECT"), (":authority", "knock.example:443")])
            self.assertEqual(c.response(sid).get(":status"), "407")
            sid = c.request([(":method", "CONNECT"), (":authority", self.echo.addr),
                             ("proxy-authorization", basic(USER, PASS))])
            self.assertEqual(c.response(sid).get(":status"), "200")
        finally:
            c.close()
        self.assertAlive(server)

    def test_curl_https_proxy_over_http11(self):
        # curl's HTTPS proxy speaks HTTP/1.1 (ALPN http/1.1): served by the same listener
        srv, server = self.server()
        r = curl(self.origin.url, proxy="https://%s:%s@127.0.0.1:%d" % (USER, PASS, srv),
                 extra=("--proxy-insecure",))
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        r = curl(self.origin.url, proxy="https://%s:%s@127.0.0.1:%d" % (USER, PASS, srv),
                 tunnel=True, extra=("--proxy-insecure",))
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        r = curl(self.origin.url, proxy="https://127.0.0.1:%d" % srv, extra=("--proxy-insecure",))
        self.assertEqual(r.http_code, "407", r)
        self.assertAlive(server)

    # -- bad input ----------------------------------------------------------

    def test_bad_input_on_listener(self):
        front, srv, server, _ = self.pair()
        for payload in (os.urandom(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"\x16\x03\x01\x00\x05hello"):
            s = connect(srv)
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                _, closed, _ = recv_until_close(s, timeout=20)
                self.assertTrue(closed, payload[:20])
            finally:
                s.close()
        # TLS, then garbage instead of the HTTP/2 preface
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(connect(srv))
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(100))
            _, closed, _ = recv_until_close(s, timeout=20)
            self.assertTrue(closed)
        finally:
            s.close()
        # ALPN http/1.1: an HTTP/1.1 proxy client is served (docs/PROTOCOLS.md "http2: server"),
        # with auth
        ctx.set_alpn_protocols(["http/1.1"])
        s = ctx.wrap_socket(connect(srv))
        try:
            s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.addr.encode())
            data, closed, _ = recv_until_close(s, timeout=20)
            self.assertTrue(data.startswith(b"HTTP/1.1 407 "), data[:100])
            self.assertTrue(closed)
        finally:
            s.close()
        s = ctx.wrap_socket(connect(srv))
        try:
            s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: %s\r\n\r\n"
                      % (self.echo.addr.encode(), basic(USER, PASS).encode()))
            head, rest = gostlib.recv_http_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            s.sendall(b"over http/1.1")
            got = rest + recv_exact(s, 13 - len(rest))
            self.assertEqual(got, b"over http/1.1")
        finally:
            s.close()
        # CONNECT without :authority is malformed (RFC 9113 §8.5): the stream is reset with
        # PROTOCOL_ERROR, as Go's server does; the connection stays
        c = H2Client(srv, tls=True)
        try:
            sid = c.request([(":method", "CONNECT"), ("proxy-authorization", basic(USER, PASS))])
            c.pump(lambda: sid in c.resets or sid in c.headers)
            self.assertEqual(c.resets.get(sid), 1, (c.headers, c.resets))  # PROTOCOL_ERROR
            sid = c.request([(":method", "CONNECT"), (":authority", self.echo.addr),
                             ("proxy-authorization", basic(USER, PASS))])
            self.assertEqual(c.response(sid).get(":status"), "200")
            c.send(sid, b"still here")
            self.assertEqual(c.recv(sid, 10), b"still here")
        finally:
            c.close()
        self.assertAlive(server)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "200", r)


if __name__ == "__main__":
    gostlib.main()
