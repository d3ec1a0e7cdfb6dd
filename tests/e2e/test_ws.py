"""WebSocket data channel: listeners and dialers ws / wss (docs/PROTOCOLS.md "ws").

Our client against our server (curl through chains, 8 MiB both ways, half-close, 100 concurrent
tunnels, keep-alive pings), python3-websockets as an independent client (to our server) and as an
independent server (for our client), and hostile input: the exact statuses of
docs/PROTOCOLS.md "ws: handshake", frames that break the rules, garbage.

Run: /usr/bin/python3 tests/e2e/test_ws.py <path-to-gost>
"""

import asyncio
import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import test_concurrency as concurrency  # noqa: E402  (module only: its tests are not collected)
import test_integrity as integrity  # noqa: E402
from gostlib import (connect, free_port, free_ports, recv_exact, recv_http_head,  # noqa: E402
                     recv_until_close, request_until_close)

import websockets  # noqa: E402  (Debian: python3-websockets)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
RESP_101 = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\n" % ACCEPT).encode()


def error_response(status, reason, body, ws_version=True, close=False):
    head = "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n" % (status, reason)
    if ws_version:
        head += "Sec-Websocket-Version: 13\r\n"
    head += "X-Content-Type-Options: nosniff\r\nDate: X\r\nContent-Length: %d\r\n" % len(body)
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


RESP_400 = error_response(400, "Bad Request", b"Bad Request\n")
RESP_405 = error_response(405, "Method Not Allowed", b"Method Not Allowed\n")
RESP_404 = error_response(404, "Not Found", b"404 page not found\n", ws_version=False)


def without_date(raw):
    return re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", raw)


def upgrade_request(path="/ws", method="GET", drop=(), replace=None, extra=""):
    headers = [("Host", "127.0.0.1"), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
               ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", KEY)]
    replace = replace or {}
    text = "%s %s HTTP/1.1\r\n" % (method, path)
    for k, v in headers:
        if k in drop:
            continue
        text += "%s: %s\r\n" % (k, replace.get(k, v))
    return (text + extra + "\r\n").encode()


def frame(opcode, payload, fin=True, mask=True, key=b"\x11\x22\x33\x44"):
    """One frame as a client (masked) or server (unmasked) writes it."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def read_response(sock, timeout=10):
    """One HTTP response (head + Content-Length body) as raw bytes, and the bytes after it."""
    head, rest = recv_http_head(sock, timeout=timeout)
    m = re.search(rb"Content-Length: (\d+)", head)
    n = int(m.group(1)) if m else 0
    if len(rest) < n:
        rest += recv_exact(sock, n - len(rest), timeout=timeout)
    return head + rest[:n], rest[n:]


def ws_open(port, path="/ws"):
    """A raw WebSocket connection to our server: the socket after a checked 101."""
    s = connect(port)
    s.sendall(upgrade_request(path))
    resp, rest = read_response(s)
    assert resp == RESP_101, resp
    assert rest == b"", rest
    return s


class WsBytes:
    """A byte stream over a python-websockets connection (messages carry no boundaries)."""

    def __init__(self, ws):
        self.ws = ws
        self.buf = bytearray()

    async def read(self, n, timeout=10):
        while len(self.buf) < n:
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
            self.buf += msg if isinstance(msg, bytes) else msg.encode()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


async def socks5_over_websocket(ws, user, password, host, port):
    """SOCKS5 CONNECT with username/password, spoken inside the WebSocket."""
    rd = WsBytes(ws)
    await ws.send(b"\x05\x01\x02")
    assert await rd.read(2) == b"\x05\x02"
    await ws.send(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
    assert await rd.read(2) == b"\x01\x00"
    await ws.send(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", port))
    reply = await rd.read(10)
    assert reply[:2] == b"\x05\x00", reply
    return rd


def insecure_client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class WebsocketsEchoServer:
    """python-websockets echo server (an independent implementation) in its own thread.
    Echoes every message on `path`; other paths are refused with 404."""

    def __init__(self, path="/ws", ssl_context=None):
        self.path = path
        self.ssl_context = ssl_context
        self.paths = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("websockets server did not start")

    async def _handler(self, ws, path=None):
        self.paths.append(ws.path)
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async def _process_request(self, path, headers):
        if path != self.path:
            return (404, [], b"not here\n")
        return None

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def start():
            self.server = await websockets.serve(
                self._handler, "127.0.0.1", 0, ssl=self.ssl_context,
                process_request=self._process_request, max_size=None)
            self.port = self.server.sockets[0].getsockname()[1]
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        fut = asyncio.run_coroutine_threadsafe(stop(), self.loop)
        try:
            fut.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()


class WsTestBase(gostlib.GostTestCase):

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())
        self.echo = self.start_server(gostlib.EchoServer())

    def ws_chain(self, server_scheme, client_scheme, auth="user:pass@", query=""):
        """Server gost `-L <server_scheme>://` and a front http proxy `-F <client_scheme>://`
        to it. Returns (front_port, server_port)."""
        front, srv = free_ports(2)
        self.ws_server = self.start_gost("-L", "%s://%s127.0.0.1:%d%s" % (server_scheme, auth, srv,
                                                                         query),
                                         port=srv, name="ws-server")
        self.start_gost("-L", "http://127.0.0.1:%d" % front,
                        "-F", "%s://%s127.0.0.1:%d%s" % (client_scheme, auth, srv, query),
                        port=front, name="front")
        return front, srv

    def assert_curl_through(self, front):
        r = gostlib.curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        r = gostlib.curl(self.origin.url + "big", proxy="http://127.0.0.1:%d" % front, tunnel=True)
        self.assertEqual((r.rc, r.http_code), (0, "200"), r)
        self.assertEqual(r.body, self.origin.big)


class WsTunnelTest(WsTestBase):
    """Our client against our server."""
    duplex_exchange = integrity.IntegrityTest.duplex_exchange
    half_close_exchange = integrity.IntegrityTest.half_close_exchange
    both_ways_and_half_close = integrity.IntegrityTest.both_ways_and_half_close

    def test_socks5_over_ws(self):
        front, _ = self.ws_chain("socks5+ws", "socks5+ws")
        self.assert_curl_through(front)

    def test_socks5_over_wss(self):
        front, _ = self.ws_chain("socks5+wss", "socks5+wss")
        self.assert_curl_through(front)

    def test_relay_over_wss(self):
        front, _ = self.ws_chain("relay+wss", "relay+wss")
        self.assert_curl_through(front)

    def test_http_over_ws(self):
        front, _ = self.ws_chain("http+ws", "http+ws")
        self.assert_curl_through(front)

    def test_auto_over_ws(self):
        # -L ws:// = auto handler on a ws listener; SOCKS5 and HTTP clients both get through
        front, srv = self.ws_chain("ws", "socks5+ws")
        self.assert_curl_through(front)
        front2 = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % front2,
                        "-F", "http+ws://user:pass@127.0.0.1:%d" % srv, port=front2, name="front2")
        self.assert_curl_through(front2)

    def test_custom_path(self):
        front, srv = self.ws_chain("socks5+ws", "socks5+ws", query="?path=/tunnel/x")
        self.assert_curl_through(front)
        # a client with another path gets 404 and the chain fails
        other = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % other,
                        "-F", "socks5+ws://user:pass@127.0.0.1:%d" % srv,
                        port=other, name="wrong-path")
        r = gostlib.curl(self.origin.url, proxy="http://127.0.0.1:%d" % other)
        self.assertNotEqual(r.http_code, "200", r)

    def _integrity(self, server_scheme, client_scheme):
        self.duplex = self.start_server(gostlib.DuplexServer(integrity.SIZE))
        self.half_reply = os.urandom(integrity.HALF_SIZE)
        self.halfsrv = self.start_server(gostlib.ReplyAfterEOFServer(self.half_reply))
        front, _ = self.ws_chain(server_scheme, client_scheme)
        label = "%s -> %s" % (client_scheme, server_scheme)
        self.both_ways_and_half_close(front, label)
        # both tunnels went through the ws server, not around it
        for target in (self.duplex.addr, self.halfsrv.addr):
            gostlib.assert_tunnels_through(self, self.ws_server, target, 1, label)

    def test_half_close_reply_to_a_slow_reader_socks5_ws(self):
        """socks5 over ws negotiates GOST's TLS method: the server's TLS stream ends at the
        client's close_notify, before the ws Close frame that follows it. The server must not
        close its socket with that frame unread: the reset would destroy the part of the reply
        still queued for a client that reads slowly (src/net/ws.cpp WsStream::close)."""
        reply = os.urandom(8 * 1024 * 1024)
        halfsrv = self.start_server(gostlib.ReplyAfterEOFServer(reply))
        front, _ = self.ws_chain("socks5+ws", "socks5+ws")
        for i in range(2):
            s = integrity.open_connect_tunnel(self, front, halfsrv.addr)
            try:
                payload = os.urandom(1024)
                s.settimeout(integrity.TRANSFER_TIMEOUT)
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                time.sleep(1.0)  # the server has written its reply and ended meanwhile
                data, closed, _ = gostlib.recv_until_close(s, timeout=integrity.TRANSFER_TIMEOUT)
            finally:
                s.close()
            self.assertTrue(closed, "round %d: no EOF" % i)
            self.assertEqual(len(data), 32 + len(reply), "round %d: got %d bytes" % (i, len(data)))
            self.assertEqual(data[32:], reply, "round %d: reply corrupted" % i)

    def test_8MiB_both_ways_and_half_close_socks5_ws(self):
        self._integrity("socks5+ws", "socks5+ws")

    def test_8MiB_both_ways_and_half_close_relay_wss(self):
        self._integrity("relay+wss", "relay+wss")

    def test_8MiB_both_ways_and_half_close_auto_ws(self):
        self._integrity("ws", "http+ws")

    def test_100_concurrent_tunnels(self):
        front, _ = self.ws_chain("socks5+ws", "socks5+ws")
        ok, errors, elapsed = concurrency.ConcurrencyTest.run_connect_batch(self, front, 100)
        concurrency.ConcurrencyTest.check_batch(self, ok, errors, elapsed, 100)
        self.assert_curl_through(front)

    def test_keepalive_pings_are_answered(self):
        """keepalive=true&ttl=2s: the client pings every 2 s (masked empty Ping 89 80) and our
        server answers; without Pongs the client would drop the idle tunnel after 4 s. (ttl=1s was
        flaky on a loaded machine: the Python tap in the middle delayed a Pong past 2 s.)"""
        front, srv = free_ports(2)
        self.start_gost("-L", "socks5+ws://127.0.0.1:%d" % srv, port=srv, name="ws-server")
        tap = self.start_server(gostlib.TapProxy(srv))
        self.start_gost("-L", "http://127.0.0.1:%d" % front,
                        "-F", "socks5+ws://127.0.0.1:%d?keepalive=true&ttl=2s" % tap.port,
                        port=front, name="front")
        s = integrity.open_connect_tunnel(self, front, self.echo.addr)
        try:
            time.sleep(5.5)  # idle: pings only, longer than 2 × ttl
            s.sendall(b"still there?")
            self.assertEqual(recv_exact(s, 12), b"still there?")
        finally:
            s.close()
        cap = tap.wait_capture_prefix(b"GET /ws HTTP/1.1\r\n")
        self.assertGreaterEqual(len(re.findall(rb"\x89\x80", cap)), 2, cap[-200:])


class WsIndependentPeerTest(WsTestBase):
    """python3-websockets as the other end."""

    def _client_session(self, uri, ssl_ctx=None):
        async def session():
            async with websockets.connect(uri, ssl=ssl_ctx, max_size=None) as ws:
                rd = await socks5_over_websocket(ws, b"user", b"pass", "127.0.0.1", self.echo.port)
                payload = os.urandom(200000)
                for i in range(0, len(payload), 50000):
                    await ws.send(payload[i:i + 50000])
                back = await rd.read(len(payload), timeout=20)
                self.assertEqual(hashlib.sha256(back).digest(), hashlib.sha256(payload).digest())
                # our server answers Pings
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, 5)
                # a text message is tunnel data too
                await ws.send("text is data")
                self.assertEqual(await rd.read(12), b"text is data")
            # the RFC close handshake: our Close echo arrived
            return ws.close_code
        return asyncio.run(asyncio.wait_for(session(), 60))

    def test_websockets_client_to_our_ws_server(self):
        p = free_port()
        self.start_gost("-L", "socks5+ws://user:pass@127.0.0.1:%d" % p, port=p)
        self.assertEqual(self._client_session("ws://127.0.0.1:%d/ws" % p), 1000)

    def test_websockets_client_to_our_wss_server(self):
        p = free_port()
        self.start_gost("-L", "socks5+wss://user:pass@127.0.0.1:%d" % p, port=p)
        code = self._client_session("wss://127.0.0.1:%d/ws" % p, insecure_client_context())
        self.assertEqual(code, 1000)

    def _forward_exchange(self, port, size=300000):
        s = connect(port, timeout=20)
        try:
            payload = os.urandom(size)
            t = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
            t.start()
            back = recv_exact(s, size, timeout=20)
            t.join(20)
            self.assertEqual(len(back), size)
            self.assertEqual(back, payload)
            s.shutdown(socket.SHUT_WR)
            rest, closed, _ = recv_until_close(s, timeout=10)
            self.assertEqual(rest, b"")
            self.assertTrue(closed)
        finally:
            s.close()

    def test_our_ws_client_to_websockets_server(self):
        """forward+ws: the last node is a plain ws transport; the tunnel is the WebSocket."""
        srv = self.start_server(WebsocketsEchoServer("/ws"))
        p = free_port()
        self.start_gost("-L", "tcp://127.0.0.1:%d/127.0.0.1:1" % p,
                        "-F", "forward+ws://127.0.0.1:%d?keepalive=true&ttl=1s" % srv.port, port=p)
        self._forward_exchange(p)
        # keep-alive against an independent server: idle past 2 × ttl, then still alive
        s = connect(p, timeout=10)
        try:
            s.sendall(b"x")
            self.assertEqual(recv_exact(s, 1), b"x")
            time.sleep(3)
            s.sendall(b"still")
            self.assertEqual(recv_exact(s, 5), b"still")
        finally:
            s.close()
        self.assertIn("/ws", srv.paths)

    def test_our_wss_client_to_websockets_server_with_path_and_query(self):
        d = tempfile.mkdtemp(prefix="gost-e2e-ws-")
        self.addCleanup(shutil.rmtree, d, True)
        cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        # path=/ws?x=1 is sent percent-encoded (/ws%3Fx=1): a third-party server sees no query
        srv = self.start_server(WebsocketsEchoServer("/ws%3Fx=1", ssl_context=ctx))
        p = free_port()
        self.start_gost("-L", "tcp://127.0.0.1:%d/127.0.0.1:1" % p,
                        "-F", "forward+wss://127.0.0.1:%d?path=/ws%%3Fx%%3D1" % srv.port, port=p)
        self._forward_exchange(p)


class WsBadInputTest(WsTestBase):
    """Hostile input to a ws listener; the server keeps serving after each."""

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.gost = self.start_gost("-L", "socks5+ws://127.0.0.1:%d" % self.port, port=self.port)

    def tearDown(self):
        # still serving: a SOCKS5 tunnel through a raw WebSocket
        self.assertAlive(self.gost)
        s = ws_open(self.port)
        try:
            s.sendall(frame(2, b"\x05\x01\x00"))
            self.assertEqual(recv_exact(s, 4), b"\x82\x02\x05\x00")
        finally:
            s.close()

    def exchange(self, request):
        s = connect(self.port)
        try:
            s.sendall(request)
            resp, _ = read_response(s)
            return without_date(resp)
        finally:
            s.close()

    def test_missing_or_wrong_upgrade_headers_400(self):
        self.assertEqual(self.exchange(upgrade_request(drop=("Connection",))), RESP_400)
        self.assertEqual(self.exchange(upgrade_request(drop=("Upgrade",))), RESP_400)
        self.assertEqual(self.exchange(upgrade_request(replace={"Upgrade": "h2c"})), RESP_400)
        self.assertEqual(self.exchange(upgrade_request(replace={"Sec-WebSocket-Version": "8"})),
                         RESP_400)
        self.assertEqual(self.exchange(upgrade_request(replace={"Sec-WebSocket-Key": "YWJj"})),
                         RESP_400)
        self.assertEqual(self.exchange(upgrade_request(drop=("Sec-WebSocket-Key",))), RESP_400)

    def test_post_405_and_wrong_path_404(self):
        self.assertEqual(self.exchange(upgrade_request(method="POST")), RESP_405)
        self.assertEqual(self.exchange(upgrade_request(path="/other")), RESP_404)
        # a bare POST fails the upgrade checks first: 400
        self.assertEqual(self.exchange(b"POST /ws HTTP/1.1\r\nHost: x\r\n\r\n"), RESP_400)

    def test_connection_kept_after_error_unless_close_requested(self):
        s = connect(self.port)
        try:
            s.sendall(upgrade_request(path="/nope"))
            resp, _ = read_response(s)
            self.assertEqual(without_date(resp), RESP_404)
            s.sendall(upgrade_request())  # same connection: now upgraded
            resp, _ = read_response(s)
            self.assertEqual(resp, RESP_101)
            s.sendall(frame(2, b"\x05\x01\x00"))
            self.assertEqual(recv_exact(s, 4), b"\x82\x02\x05\x00")
        finally:
            s.close()
        data, closed = request_until_close(
            self.port, upgrade_request(method="POST", extra="Connection: close\r\n"))
        self.assertTrue(closed)
        self.assertEqual(without_date(data),
                         error_response(405, "Method Not Allowed", b"Method Not Allowed\n",
                                        close=True))

    def test_bytes_glued_to_request_closed_without_response(self):
        data, closed = request_until_close(self.port, upgrade_request() + frame(2, b"\x05\x01\x00"))
        self.assertTrue(closed)
        self.assertEqual(data, b"")

    def test_unmasked_client_frame_gets_close_1002(self):
        s = ws_open(self.port)
        try:
            s.sendall(frame(2, b"hello", mask=False))
            data, closed, _ = recv_until_close(s)
        finally:
            s.close()
        self.assertTrue(closed)
        self.assertEqual(data, b"\x88\x0a\x03\xea" + b"bad MASK")

    def test_oversized_frame_gets_close_1009(self):
        s = ws_open(self.port)
        try:
            s.sendall(b"\x82\xff" + struct.pack(">Q", 100 << 20) + b"\x01\x02\x03\x04")
            data, closed, _ = recv_until_close(s)
        finally:
            s.close()
        self.assertTrue(closed)
        self.assertEqual(data, b"\x88\x02\x03\xf1")

    def test_reserved_bits_and_bad_opcode_get_close_1002(self):
        for bad, reason in ((b"\xc2\x80\x00\x00\x00\x00", b"unexpected reserved bits 0x40"),
                            (b"\x83\x80\x00\x00\x00\x00", b"unknown opcode 3"),
                            (b"\x80\x80\x00\x00\x00\x00", b"continuation after final message frame")):
            s = ws_open(self.port)
            try:
                s.sendall(bad)
                data, closed, _ = recv_until_close(s)
            finally:
                s.close()
            self.assertTrue(closed)
            self.assertEqual(data, b"\x88" + bytes([2 + len(reason)]) + b"\x03\xea" + reason)

    def test_garbage_closed(self):
        data, closed = request_until_close(self.port, b"\x16\x03\x01\x00garbage\r\n\r\n")
        self.assertTrue(closed)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)
        data, closed = request_until_close(self.port, os.urandom(70000).replace(b"\n", b"x"))
        self.assertTrue(closed)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 431 "), data[:100])

    def test_ping_answered_and_close_echoed_when_tunnel_ends(self):
        s = ws_open(self.port)
        try:
            s.sendall(frame(9, b""))
            self.assertEqual(recv_exact(s, 2), b"\x8a\x00")
            s.sendall(frame(1, b"\x05\x01\x00"))  # a text frame is data too
            self.assertEqual(recv_exact(s, 4), b"\x82\x02\x05\x00")
            s.sendall(frame(2, b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1")
                            + struct.pack(">H", self.echo.port)))
            self.assertEqual(recv_exact(s, 4), b"\x82\x0a\x05\x00")
            recv_exact(s, 8)
            s.sendall(frame(9, b"abc"))
            self.assertEqual(recv_exact(s, 5), b"\x8a\x03abc")
            s.sendall(frame(2, b"echo me"))
            self.assertEqual(recv_exact(s, 9), b"\x82\x07echo me")
            # the RFC close: EOF towards the target; once it has ended too, the Close is echoed
            s.sendall(frame(8, b"\x03\xe8"))
            data, closed, _ = recv_until_close(s)
            self.assertTrue(closed)
            self.assertEqual(data, b"\x88\x02\x03\xe8")
        finally:
            s.close()


class WsTimeoutAndConfigTest(WsTestBase):

    def test_incomplete_request_head_closed_after_read_header_timeout(self):
        p = free_port()
        self.start_gost("-L", "socks5+ws://127.0.0.1:%d?readHeaderTimeout=1s" % p, port=p)
        s = connect(p)
        try:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            data, closed, elapsed = recv_until_close(s, timeout=10)
        finally:
            s.close()
        self.assertTrue(closed)
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 5)

    def test_enable_compression_rejected_at_startup(self):
        p = free_port()
        for args in (["-L", "ws://127.0.0.1:%d?enableCompression=true" % p],
                     ["-L", "http://127.0.0.1:%d" % p,
                      "-F", "socks5+ws://127.0.0.1:1?enableCompression=true"]):
            cp = gostlib.run_gost(args)
            self.assertEqual(cp.returncode, 1, cp)
            self.assertIn(b"enableCompression", cp.stdout + cp.stderr)

    def test_listener_header_map_in_101(self):
        p = free_port()
        cfg = self.write_file("ws.yaml", (
            "services:\n"
            "- name: s\n"
            "  addr: 127.0.0.1:%d\n"
            "  handler: {type: socks5}\n"
            "  listener:\n"
            "    type: ws\n"
            "    metadata:\n"
            "      path: /p\n"
            "      header: {x-served-by: gost}\n") % p)
        self.start_gost("-C", cfg, port=p)
        s = connect(p)
        try:
            s.sendall(upgrade_request(path="/p"))
            resp, _ = read_response(s)
        finally:
            s.close()
        self.assertEqual(resp, RESP_101[:-2] + b"X-Served-By: gost\r\n\r\n")


if __name__ == "__main__":
    gostlib.main()
