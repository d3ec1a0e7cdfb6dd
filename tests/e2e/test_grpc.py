"""grpc / grpc insecure: GOST's gRPC tunnel, /GostTunel/Tunnel of Chunk messages
(docs/PROTOCOLS.md "grpc").

Our client against our server (seed pairs, TLS and insecure): curl through a local http proxy,
8 MiB both ways with checksums, half-close, 100 concurrent tunnels over one connection, the `path`
option; an independent gRPC client (python3-grpcio with a hand-written stub) speaking socks5
inside the tunnel; a raw HTTP/2 client (python3-h2) for the grpc-status answers of
"grpc: request and response" and bad input (malformed length prefixes, oversized messages, wrong
content-type / path / method).
Run: /usr/bin/python3 tests/e2e/test_grpc.py <path-to-gost>
"""

import os
import queue
import re
import signal
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import transportlib  # noqa: E402
import test_concurrency  # noqa: E402
import test_integrity  # noqa: E402
from gostlib import connect, curl, free_ports, recv_until_close  # noqa: E402
from test_h2 import H2Client  # noqa: E402

import h2.events  # noqa: E402

try:
    import grpc  # python3-grpcio
except ImportError:  # pragma: no cover - scripts/setup.sh installs it
    grpc = None

USER, PASS = "user", "pass"
INSECURE = "?grpcInsecure=true"
GRPC_HEAD = [(":method", "POST"), (":scheme", "http"), (":path", "/GostTunel/Tunnel"),
             (":authority", "localhost"), ("content-type", "application/grpc"),
             ("te", "trailers")]


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def chunk(data):
    """protobuf Chunk{bytes data = 1} (field absent for empty data, as proto3 encodes it)."""
    return b"\x0a" + varint(len(data)) + data if data else b""


def unchunk(msg):
    """The data field of a Chunk (unknown fields skipped; only what GOST sends is needed)."""
    out, i = bytearray(), 0
    while i < len(msg):
        tag = msg[i]
        i += 1
        n, shift = 0, 0
        while True:
            b = msg[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if tag == 0x0A:
            out += msg[i:i + n]
        i += n
    return bytes(out)


def frame(data):
    m = chunk(data)
    return b"\x00" + len(m).to_bytes(4, "big") + m


class GrpcH2Client(H2Client):
    """python3-h2 client that also records trailers."""

    def __init__(self, port, tls=False):
        super().__init__(port, tls=tls)
        self.trailers = {}
        self.pings = 0

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
                elif isinstance(ev, h2.events.PingReceived):
                    self.pings += 1
                elif isinstance(ev, h2.events.TrailersReceived):
                    self.trailers[ev.stream_id] = dict(ev.headers)
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

    def finish(self, sid, timeout=10):
        """Waits for the end of stream `sid`: (head, trailers or {}, reset code or None)."""
        self.pump(lambda: sid in self.ended or sid in self.resets, timeout)
        return dict(self.headers.get(sid, {})), self.trailers.get(sid, {}), self.resets.get(sid)


class GrpcTunnel:
    """The tunnel opened by python3-grpcio: a byte-stream view of one Tunnel call."""

    def __init__(self, channel, path="/GostTunel/Tunnel"):
        self.q = queue.Queue()
        call = channel.stream_stream(path, request_serializer=chunk, response_deserializer=unchunk)

        def requests():
            while True:
                item = self.q.get()
                if item is None:
                    return
                yield item

        self.responses = call(requests(), timeout=30)
        self.buf = bytearray()

    def send(self, data):
        self.q.put(data)

    def recv(self, n):
        while len(self.buf) < n:
            self.buf += next(self.responses)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def close(self):
        self.q.put(None)


class GrpcTest(transportlib.TransportTestCase):

    def pair(self, server_scheme, client_scheme, workers=None, query="", client_query=None):
        front, srv = free_ports(2)
        cred = "%s:%s@" % (USER, PASS)
        server = self.start_gost("-L", "%s://%s127.0.0.1:%d%s" % (server_scheme, cred, srv, query),
                                 port=srv, name="server")
        env = {"GOST_WORKERS": str(workers)} if workers else None
        cq = query if client_query is None else client_query
        client = gostlib.start_gost_in(self, "-L", "http://127.0.0.1:%d" % front,
                                       "-F", "%s://%s127.0.0.1:%d%s" % (client_scheme, cred, srv, cq),
                                       port=front, name="client", env_extra=env)
        return front, srv, server, client

    def connections(self, server):
        """Distinct client addresses in the server's per-tunnel log lines: one per connection."""
        return set(re.findall(r'"msg":"(127\.0\.0\.1:\d+) <> ', server.stderr_text()))

    def check_transport(self, scheme, query=""):
        front, _, server, _ = self.pair(scheme, scheme, query=query)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        self.both_ways_and_half_close(front, scheme + query)
        self.assertAlive(server)
        # every tunnel went through the server (a client that ignored -F would pass the
        # checks above going direct)
        for target in (self.origin.addr, self.duplex.addr, self.halfsrv.addr):
            self.assert_through(server, target, 1, scheme + query)

    # -- our client, our server ---------------------------------------------

    def test_relay_grpc_tls(self):
        self.check_transport("relay+grpc")

    def test_relay_grpc_insecure(self):
        self.check_transport("relay+grpc", INSECURE)

    def test_socks5_grpc_with_path(self):
        self.check_transport("socks5+grpc", INSECURE + "&path=/a/b/c")

    def test_path_mismatch_fails_the_tunnel(self):
        front, _, server, _ = self.pair("relay+grpc", "relay+grpc", query=INSECURE + "&path=/x",
                                        client_query=INSECURE + "&path=/y")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertNotEqual(r.http_code, "200", r)
        self.assertEqual(self.origin.requests, [])
        self.assertAlive(server)

    def test_insecure_mismatch_fails(self):
        front, _, server, _ = self.pair("relay+grpc", "relay+grpc", query="", client_query=INSECURE)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertNotEqual(r.http_code, "200", r)
        self.assertAlive(server)

    def test_100_concurrent_tunnels_share_one_connection(self):
        for query in ("", INSECURE):
            front, _, server, _ = self.pair("relay+grpc", "relay+grpc", workers=1, query=query)
            ok, errors, elapsed = self.run_connect_batch(front, 100)
            self.check_batch(ok, errors, elapsed, 100)
            self.assertEqual(len(self.connections(server)), 1, server.stderr_text()[-2000:])

    def test_server_restart_client_reconnects(self):
        front, srv, server, _ = self.pair("relay+grpc", "relay+grpc", workers=1, query=INSECURE)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual(r.http_code, "200", r)
        server.stop()
        self.start_gost("-L", "relay+grpc://%s:%s@127.0.0.1:%d%s" % (USER, PASS, srv, INSECURE),
                        port=srv, name="server-2")
        deadline = time.monotonic() + 10
        r = None
        while time.monotonic() < deadline:
            r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
            if r.http_code == "200":
                break
            time.sleep(0.2)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)

    def test_client_keepalive_detects_a_dead_server(self):
        """keepalive=true: a server that stops answering (SIGSTOP: no FIN) is detected by the
        unanswered PING (time 10 s, the grpc-go minimum; timeout 2 s) and the tunnel ends."""
        front, _, server, _ = self.pair("relay+grpc", "relay+grpc", query=INSECURE,
                                        client_query=INSECURE + "&keepalive=true&keepalive.time=10s"
                                        "&keepalive.timeout=2s")
        s = test_integrity.open_connect_tunnel(self, front, self.echo.addr)
        try:
            s.sendall(b"hello")
            self.assertEqual(gostlib.recv_exact(s, 5), b"hello")
            os.kill(server.pid, signal.SIGSTOP)
            try:
                start = time.monotonic()
                _, closed, _ = recv_until_close(s, timeout=30)
                took = time.monotonic() - start
            finally:
                os.kill(server.pid, signal.SIGCONT)
            self.assertTrue(closed, "tunnel to a stopped server was not closed")
            self.assertGreater(took, 8)
            self.assertLess(took, 20)
        finally:
            s.close()

    def test_server_keepalive_pings_and_drops_a_silent_client(self):
        srv = free_ports(1)[0]
        self.start_gost("-L", "relay+grpc://127.0.0.1:%d?grpcInsecure=true&keepalive=true"
                        "&keepalive.time=1s&keepalive.timeout=1s" % srv, port=srv, name="server")
        # an HTTP/2 client that answers: pinged after ~1 s idle, and kept
        c = GrpcH2Client(srv)
        try:
            c.pump(lambda: c.pings >= 2, timeout=10)
            self.assertIsNone(c.goaway)
        finally:
            c.close()
        # a client that sends its preface and then nothing: dropped after time + timeout
        s = connect(srv)
        try:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            start = time.monotonic()
            _, closed, _ = recv_until_close(s, timeout=15)
            self.assertTrue(closed)
            self.assertLess(time.monotonic() - start, 10)
        finally:
            s.close()

    # -- independent clients ------------------------------------------------

    def socks5_over(self, t):
        t.send(b"\x05\x01\x00")
        self.assertEqual(t.recv(2), b"\x05\x00")
        host, port = self.echo.addr.rsplit(":", 1)
        t.send(b"\x05\x01\x00\x01" + socket.inet_aton(host) + int(port).to_bytes(2, "big"))
        reply = t.recv(10)
        self.assertEqual(reply[:2], b"\x05\x00", reply)
        payload = os.urandom(300000)
        for i in range(0, len(payload), 70000):
            t.send(payload[i:i + 70000])
        self.assertEqual(t.recv(len(payload)), payload)

    def test_grpcio_client_socks5_inside(self):
        if grpc is None:
            self.skipTest("python3-grpcio is not installed")
        srv = free_ports(1)[0]
        server = self.start_gost("-L", "socks5+grpc://127.0.0.1:%d?grpcInsecure=true" % srv,
                                 port=srv, name="server")
        with grpc.insecure_channel("127.0.0.1:%d" % srv) as ch:
            t1 = GrpcTunnel(ch)
            self.socks5_over(t1)
            t2 = GrpcTunnel(ch)  # a second call on the same channel
            self.socks5_over(t2)
            # half-close from grpcio: the echo server sees EOF, the call ends with OK
            t2.close()
            self.assertEqual(list(t2.responses), [])
            self.assertEqual(t2.responses.code(), grpc.StatusCode.OK)
            t1.send(b"ping")
            self.assertEqual(t1.recv(4), b"ping")
            t1.close()
            # unknown method / service: UNIMPLEMENTED
            for path, text in (("/GostTunel/Nope", "unknown method Nope for service GostTunel"),
                               ("/Nope/Tunnel", "unknown service Nope")):
                t = GrpcTunnel(ch, path)
                t.close()
                with self.assertRaises(grpc.RpcError) as cm:
                    list(t.responses)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
                self.assertIn(text, cm.exception.details())
        self.assertAlive(server)

    def test_grpcio_client_tls_and_path(self):
        if grpc is None:
            self.skipTest("python3-grpcio is not installed")
        srv = free_ports(1)[0]
        server = self.start_gost("-L", "socks5+grpc://127.0.0.1:%d?path=/foo" % srv,
                                 port=srv, name="server")
        pem = ssl.get_server_certificate(("127.0.0.1", srv)).encode()
        creds = grpc.ssl_channel_credentials(root_certificates=pem)
        # our generated certificate names gost.run (docs/PROTOCOLS.md "tls: default certificate")
        with grpc.secure_channel("127.0.0.1:%d" % srv, creds,
                                 options=[("grpc.ssl_target_name_override", "gost.run")]) as ch:
            t = GrpcTunnel(ch, "/foo/Tunnel")
            self.socks5_over(t)
            t.close()
            self.assertEqual(list(t.responses), [])
        self.assertAlive(server)

    def grpcio_echo_server(self, tls_files=None, abort=False):
        """An independent gRPC server (python3-grpcio) whose Tunnel echoes every Chunk (or ends
        the call with PERMISSION_DENIED). It sends its response head lazily, with the first
        message, as grpc-go does. Returns the port."""
        from concurrent import futures

        def tunnel(requests, context):
            if abort:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "go away")
            for msg in requests:
                if msg:
                    yield msg

        handler = grpc.method_handlers_generic_handler("GostTunel", {
            "Tunnel": grpc.stream_stream_rpc_method_handler(
                tunnel, request_deserializer=unchunk, response_serializer=chunk)})
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers((handler,))
        if tls_files:
            cert, key = tls_files
            with open(key, "rb") as k, open(cert, "rb") as c:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            port = server.add_secure_port("127.0.0.1:0", creds)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.addCleanup(server.stop, None)
        return port

    def check_our_client_against_grpcio(self, tls):
        files = gostlib.make_self_signed(gostlib.temp_dir(self), "srv", "grpc.example") if tls else None
        srv = self.grpcio_echo_server(files)
        front = free_ports(1)[0]
        query = "" if tls else INSECURE
        # forward connector: the tunnel's bytes go to the echo method as they are
        self.start_gost("-L", "tcp://127.0.0.1:%d/127.0.0.1:9" % front,
                        "-F", "forward+grpc://127.0.0.1:%d%s" % (srv, query), port=front, name="client")
        socks = [connect(front) for _ in range(3)]
        try:
            for i, s in enumerate(socks):
                payload = os.urandom(200000 + i)
                s.sendall(payload)
                self.assertEqual(gostlib.recv_exact(s, len(payload), timeout=20), payload)
            # half-close: END_STREAM → the server's call ends with OK → EOF
            socks[0].shutdown(socket.SHUT_WR)
            data, closed, _ = recv_until_close(socks[0], timeout=10)
            self.assertEqual((data, closed), (b"", True))
        finally:
            for s in socks:
                s.close()

    def test_our_client_against_grpcio_server_insecure(self):
        if grpc is None:
            self.skipTest("python3-grpcio is not installed")
        self.check_our_client_against_grpcio(False)

    def test_our_client_against_grpcio_server_tls(self):
        if grpc is None:
            self.skipTest("python3-grpcio is not installed")
        self.check_our_client_against_grpcio(True)

    def test_our_client_sees_an_error_status(self):
        if grpc is None:
            self.skipTest("python3-grpcio is not installed")
        srv = self.grpcio_echo_server(abort=True)
        front = free_ports(1)[0]
        client = self.start_gost("-L", "tcp://127.0.0.1:%d/127.0.0.1:9" % front,
                                 "-F", "forward+grpc://127.0.0.1:%d%s" % (srv, INSECURE),
                                 "-D", port=front, name="client")
        s = connect(front)
        try:
            s.sendall(b"x")
            data, closed, _ = recv_until_close(s, timeout=10)
            self.assertEqual((data, closed), (b"", True))
        finally:
            s.close()
        self.assertTrue(gostlib.wait_until(lambda: "go away" in client.stderr_text(), timeout=5),
                        client.stderr_text()[-2000:])

    def test_h2_client_headers_trailers_and_bad_input(self):
        srv = free_ports(1)[0]
        server = self.start_gost("-L", "socks5+grpc://127.0.0.1:%d?grpcInsecure=true" % srv,
                                 port=srv, name="server")
        c = GrpcH2Client(srv)
        try:
            # a good call: head at once, messages of any chunking, trailers grpc-status 0 at the end
            sid = c.request(GRPC_HEAD)
            h = c.response(sid)
            self.assertEqual((h.get(":status"), h.get("content-type")), ("200", "application/grpc"), h)
            greeting = frame(b"\x05\x01\x00")
            c.send(sid, greeting[:3])
            c.send(sid, greeting[3:] + frame(b""))  # the prefix split, then an empty message
            got = c.recv(sid, 7)
            self.assertEqual(got, b"\x00\x00\x00\x00\x04\x0a\x02", got)
            self.assertEqual(c.recv(sid, 2), b"\x05\x00")
            c.conn.end_stream(sid)  # half-close before any CONNECT: the handler ends
            c.flush()
            head, trailers, reset = c.finish(sid)
            self.assertEqual(trailers.get("grpc-status"), "0", (trailers, reset))
            self.assertIn("grpc-message", trailers)

            def call(head, body=None, end=True):
                s = c.request(head, end_stream=body is None and end)
                if body is not None:
                    c.conn.send_data(s, body, end_stream=end)
                    c.flush()
                return c.finish(s)

            # wrong content-type → 415 + grpc-status 3
            bad_ct = [x for x in GRPC_HEAD if x[0] != "content-type"] + [("content-type", "text/plain")]
            head, _, _ = call(bad_ct)
            self.assertEqual((head.get(":status"), head.get("grpc-status")), ("415", "3"), head)
            self.assertIn('invalid gRPC request content-type "text/plain"', head.get("grpc-message"))
            # unknown service / method → trailers-only grpc-status 12
            for path, text in (("/Other/Tunnel", "unknown service Other"),
                               ("/GostTunel/Other", "unknown method Other for service GostTunel")):
                hd = [x if x[0] != ":path" else (":path", path) for x in GRPC_HEAD]
                head, _, _ = call(hd)
                self.assertEqual((head.get(":status"), head.get("grpc-status"),
                                  head.get("grpc-message")), ("200", "12", text), head)
            # GET → RST_STREAM(PROTOCOL_ERROR)
            hd = [x if x[0] != ":method" else (":method", "GET") for x in GRPC_HEAD]
            _, _, reset = call(hd)
            self.assertEqual(reset, 1)
            # malformed length prefixes and oversized messages → an error status in the trailers
            for body, status in ((b"\x02\x00\x00\x00\x01\x00", "13"),          # bad flag
                                 (b"\x01\x00\x00\x00\x02\x0a\x00", "13"),      # compressed
                                 (b"\x00\x7f\xff\xff\xff" + b"x" * 100, "8"),  # 2 GiB message
                                 (b"\x00\x00\x40\x00\x01", "8"),               # 4 MiB + 1
                                 (b"\x00\x00\x00\x00\x03\x0a\x09a", "13")):    # field > message
                _, trailers, reset = call(GRPC_HEAD, body, end=False)
                self.assertEqual(trailers.get("grpc-status"), status, (body, trailers, reset))
                self.assertTrue(trailers.get("grpc-message"), trailers)
            # truncated message at END_STREAM → an error status as well
            _, trailers, _ = call(GRPC_HEAD, b"\x00\x00\x00\x00\x10\x0a", end=True)
            self.assertEqual(trailers.get("grpc-status"), "13", trailers)
            # the connection still serves calls
            sid = c.request(GRPC_HEAD)
            c.send(sid, frame(b"\x05\x01\x00"))
            self.assertEqual(c.recv(sid, 9), frame(b"\x05\x00"))
        finally:
            c.close()
        # garbage instead of HTTP/2, and TLS on the insecure listener: the connection is dropped
        for payload in (os.urandom(4096), b"\x16\x03\x01\x00\x05hello",
                        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(4096),
                        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
            s = connect(srv)
            try:
                s.sendall(payload)
                _, closed, _ = recv_until_close(s, timeout=20)
                self.assertTrue(closed, payload[:20])
            finally:
                s.close()
        self.assertAlive(server)
        # TLS listener: a client that does not offer h2 is dropped
        srv2 = free_ports(1)[0]
        self.start_gost("-L", "socks5+grpc://127.0.0.1:%d" % srv2, port=srv2, name="server-tls")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        s = ctx.wrap_socket(connect(srv2))
        try:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            s.settimeout(10)
            try:
                self.assertEqual(s.recv(100), b"")
            except (ConnectionError, ssl.SSLError):
                pass
        finally:
            s.close()


if __name__ == "__main__":
    gostlib.main()
