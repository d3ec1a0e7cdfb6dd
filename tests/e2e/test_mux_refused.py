"""mws client: a stream the server refused before it carried data is retried
(docs/PROTOCOLS.md "smux: refused streams", issue 16).

A GOST 3.2.6 mws/mwss server whose connection queue is full closes a new smux stream at once: a FIN
right after the SYN, no data (go-gost/x listener/mws/listener.go: stream.Close()). FakeMws below
does that for the streams it is told to refuse and forwards the others to a real handler (our
`gost -L relay://`, `socks5://`, `http://` on plain TCP), so the client under test
(`gost -L tcp://:P/<echo> -F <connector>+mws://<fake>`) meets refusals exactly as GOST sends them.

Checked: every tunnel arrives intact (random bytes, sha256) through K refusals, for relay (its
request rides on the first payload write, so the refusal is seen only on the first read and the
write is sent again), socks5 and http; the refusals are logged (a warning) and counted
(gost_chain_refused_streams_total); a server that refuses every stream ends the tunnel after
3 retries with a clear line, in bounded time; a stream that carried a reply (an auth failure, a
refused target, a normal end) is never opened again; nor is a tunnel that had half-closed or had
written more than the replay bound.
Run: /usr/bin/python3 tests/e2e/test_mux_refused.py <path-to-gost>
"""

import base64
import hashlib
import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import LOOPBACK, connect, free_ports, recv_exact, recv_until_close  # noqa: E402

SYN, FIN, PSH, NOP = 0, 1, 2, 3
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REPLAY_LIMIT = 16 * 1024  # net::RefusedRetryLimits::replay_limit
MAX_RETRIES = 3
LATE = 6  # past net::RefusedRetryLimits::refusal_window (5 s)


class FakeMws:
    """A GOST-like mws server: the WebSocket upgrade, then the server side of an smux v1 session.

    refuse: how many streams (over all connections) are refused, in SYN order; -1: every one.
    when: "syn" refuses at once (GOST's behaviour); "data" after the stream's first data (so the
    client has written before it sees the refusal); "fin" after the client's FIN (a half-closed
    tunnel); "limit" once more than REPLAY_LIMIT bytes arrived on the stream; "late" LATE seconds
    after the SYN (no refusal: a relay server's request timeout ending a tunnel that never wrote).
    "syn_close" refuses at once, then closes the whole WebSocket (a server going away).
    Other streams are forwarded to 127.0.0.1:backend: the client's data to it, its answer back.
    """

    def __init__(self, backend, refuse=0, when="syn", tls=None):
        self.backend = backend
        self.tls = tls  # an ssl.SSLContext: mwss
        self.refuse_left = refuse
        self.when = when
        self.lock = threading.Lock()
        self.syns = 0
        self.refused = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.sock.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    # ---- WebSocket (RFC 6455), server side ----

    def _serve(self, c):
        c.settimeout(30)
        try:
            if self.tls:  # TLS in a thread of its own: this session reads and writes c at once
                c = gostlib.tls_server_pipe(self.tls, c)
                c.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d or len(head) > 16384:
                    return
                head += d
            key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            Session(self, c).run()
        except (OSError, EOFError, AttributeError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def take_refusal(self):
        with self.lock:
            self.syns += 1
            if self.refuse_left == 0:
                return False
            if self.refuse_left > 0:
                self.refuse_left -= 1
            self.refused += 1
            return True


class Session:
    """One smux v1 server session over one WebSocket."""

    def __init__(self, fake, c):
        self.fake, self.c = fake, c
        self.wlock = threading.Lock()
        self.buf = b""
        self.streams = {}  # sid -> backend socket (accepted) or a dict of counters (to refuse)

    def ws_send(self, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x82, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x82, 126, n)
        else:
            head = struct.pack("!BBQ", 0x82, 127, n)
        with self.wlock:
            self.c.sendall(head + payload)

    def frame(self, cmd, sid, data=b""):
        self.ws_send(struct.pack("<BBHI", 1, cmd, len(data), sid) + data)

    def ws_payload(self):
        """The next data frame's payload (answers pings, ends at a close frame)."""
        while True:
            head = recv_exact(self.c, 2, 30)
            if len(head) < 2:
                raise EOFError
            b0, b1 = head
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", recv_exact(self.c, 2, 30))[0]
            elif n == 127:
                n = struct.unpack("!Q", recv_exact(self.c, 8, 30))[0]
            mask = recv_exact(self.c, 4, 30) if b1 & 0x80 else b"\0\0\0\0"
            data = recv_exact(self.c, n, 30) if n else b""
            if len(data) < n:
                raise EOFError
            data = bytes(x ^ mask[i % 4] for i, x in enumerate(data))
            op = b0 & 0x0F
            if op == 8:
                raise EOFError
            if op == 9:
                with self.wlock:
                    self.c.sendall(struct.pack("!BB", 0x8A, len(data)) + data)
                continue
            if op in (0, 1, 2):
                return data

    def need(self, n):
        while len(self.buf) < n:
            self.buf += self.ws_payload()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def run(self):
        try:
            while True:
                ver, cmd, length, sid = struct.unpack("<BBHI", self.need(8))
                data = self.need(length) if length else b""
                if ver != 1:
                    return
                self.on_frame(cmd, sid, data)
        finally:
            for s in self.streams.values():
                if isinstance(s, socket.socket):
                    s.close()

    def refuse(self, sid):
        self.streams[sid] = None  # GOST forgets the stream: later frames for it are dropped
        self.frame(FIN, sid)

    def on_frame(self, cmd, sid, data):
        fake = self.fake
        if cmd == SYN:
            if sid in self.streams:
                return
            if fake.take_refusal():
                if fake.when == "syn":
                    self.refuse(sid)
                elif fake.when == "syn_close":
                    self.refuse(sid)
                    raise EOFError  # the session ends: the client needs a new one
                elif fake.when == "late":
                    self.streams[sid] = {"bytes": 0}
                    t = threading.Timer(LATE, self.refuse, args=(sid,))
                    t.daemon = True
                    t.start()
                else:
                    self.streams[sid] = {"bytes": 0}
                return
            b = socket.create_connection((LOOPBACK, fake.backend), timeout=10)
            b.settimeout(60)
            self.streams[sid] = b
            threading.Thread(target=self.pump, args=(sid, b), daemon=True).start()
            return
        s = self.streams.get(sid)
        if isinstance(s, dict):  # a stream to refuse later
            s["bytes"] += len(data)
            if ((fake.when == "data" and cmd == PSH and data)
                    or (fake.when == "fin" and cmd == FIN)
                    or (fake.when == "limit" and s["bytes"] > REPLAY_LIMIT)):
                self.refuse(sid)
            return
        if s is None:
            return
        if cmd == PSH and data:
            try:
                s.sendall(data)
            except OSError:
                pass
        elif cmd == FIN:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def pump(self, sid, b):
        try:
            while True:
                d = b.recv(16384)
                if not d:
                    break
                self.frame(PSH, sid, d)
            self.frame(FIN, sid)
        except OSError:
            pass


def exchange(port, payload, timeout=20, first=1000):
    """Through the tunnel at `port` to an echo target: the first `first` bytes of payload (a
    request: what a refused stream must carry again), their echo, then the rest (bulk on the
    stream that was accepted). Returns everything read back."""
    s = connect(port, timeout)
    try:
        s.sendall(payload[:first])
        got = recv_exact(s, min(first, len(payload)), timeout)
        s.sendall(payload[first:])
        return got + recv_exact(s, len(payload) - len(got), timeout)
    finally:
        s.close()


def until_end(port, data=b"hello", timeout=10):
    """Sends data through the tunnel at `port`; returns what came back before the tunnel ended
    (fails when it does not end within `timeout`)."""
    s = connect(port, timeout)
    try:
        s.sendall(data)
        got, ended, _ = recv_until_close(s, timeout)
    finally:
        s.close()
    if not ended:
        raise AssertionError("the tunnel did not end within %ss" % timeout)
    return got


class MuxRefusedTest(gostlib.GostTestCase):

    def setUp(self):
        self.echo = self.start_server(gostlib.EchoServer())

    def backend(self, scheme):
        port = free_ports(1)[0]
        self.start_gost("-L", "%s://127.0.0.1:%d" % (scheme, port), port=port, name="backend")
        return port

    def fake(self, backend, refuse=0, when="syn", tls=False):
        ctx = None
        if tls:
            cert, key = gostlib.make_self_signed(gostlib.temp_dir(self), "fake", "fake.test")
            ctx = gostlib.ssl.SSLContext(gostlib.ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
        f = FakeMws(backend, refuse, when, ctx)
        self.addCleanup(f.close)
        return f

    def client(self, connector, fake, target=None, transport="mws", before=()):
        """`gost -L tcp://:front/target [-F before...] -F connector+transport://fake`."""
        front, metrics = free_ports(2)
        target = target or self.echo.addr
        node = "%s+%s://127.0.0.1:%d" % (connector, transport, fake.port)
        chain = []
        for b in before:
            chain += ["-F", b]
        proc = self.start_gost("-L", "tcp://127.0.0.1:%d/%s" % (front, target), *chain, "-F", node,
                               "-metrics", "127.0.0.1:%d" % metrics, name="client", wait=False)
        # LISTEN without a probe connection: a probe would be a tunnel, with a stream of its own
        for port in (front, metrics):
            self.assertTrue(gostlib.wait_listening(port, proc=proc.proc), proc.diagnostics())
        return front, metrics, proc

    def refused_metric(self, metrics_port):
        s = connect(metrics_port, 10)
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            body = recv_until_close(s, 10)[0].decode("utf-8", "replace")
        finally:
            s.close()
        return sum(int(v) for v in re.findall(
            r'^gost_chain_refused_streams_total\{chain="chain-0",host="[^"]*",node="node-\d+"\} '
            r'(\d+)$', body, re.M))

    def warnings(self, proc):
        return [line for line in proc.stderr_text().splitlines()
                if '"level":"warning"' in line and "refused by 127.0.0.1:" in line]

    def check_intact(self, connector, scheme, refuse, when, n, size=256 * 1024, tls=False,
                     before=()):
        fake = self.fake(self.backend(scheme), refuse, when, tls)
        front, metrics, proc = self.client(connector, fake, transport="mwss" if tls else "mws",
                                           before=before)
        payloads = [os.urandom(size) for _ in range(n)]
        results = [None] * n
        errors = []

        def run(i):
            try:
                results[i] = exchange(front, payloads[i])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        gostlib.join_all(threads, 60)
        lost = [i for i in range(n)
                if results[i] is None or hashlib.sha256(results[i]).digest()
                != hashlib.sha256(payloads[i]).digest()]
        self.assertEqual(lost, [], "%s: tunnels lost or corrupted through %d refusals: %r"
                         % (connector, refuse, errors))
        self.assertEqual(fake.refused, refuse)
        # every refused stream was opened once more, and nothing else was
        self.assertEqual(fake.syns, n + refuse, "%s: SYNs at the server" % connector)
        self.assertTrue(gostlib.wait_until(lambda: self.refused_metric(metrics) == refuse, 5),
                        "gost_chain_refused_streams_total is %d, want %d"
                        % (self.refused_metric(metrics), refuse))
        warned = self.warnings(proc)
        self.assertTrue(warned and all("(retrying)" in w for w in warned),
                        "no refusal warning: %s" % proc.stderr_text()[-3000:])
        self.assertAlive(proc)
        return fake

    # ---- retried, intact ----

    def test_relay_refused_at_syn(self):
        self.check_intact("relay", "relay", refuse=5, when="syn", n=8)

    def test_relay_refused_after_its_first_write(self):
        # the request and the first payload went out with the refused stream: sent again
        self.check_intact("relay", "relay", refuse=4, when="data", n=4)

    def test_relay_three_refusals_in_a_row(self):
        self.check_intact("relay", "relay", refuse=MAX_RETRIES, when="data", n=1)

    def test_socks5_refused(self):
        self.check_intact("socks5", "socks5", refuse=4, when="syn", n=6)
        
    def test_socks5_refused_after_greeting(self):
        self.check_intact("socks5", "socks5", refuse=2, when="data", n=2)

    def test_http_refused(self):
        self.check_intact("http", "http", refuse=4, when="data", n=6)

    def test_refused_then_session_closed(self):
        # the refused stream's session is gone too: the retry opens a new one
        fake = self.check_intact("relay", "relay", refuse=1, when="syn_close", n=1)
        self.assertEqual(len(fake.conns), 2, "WebSocket connections to the server")

    def test_burst_with_refusals(self):
        # many tunnels at once on one session, 40 of them refused after their first write: the
        # retries interleave with the other tunnels' bulk
        self.check_intact("relay", "relay", refuse=40, when="data", n=100, size=64 * 1024)

    def test_mwss_refused(self):
        self.check_intact("relay", "relay", refuse=3, when="data", n=4, tls=True)

    def test_later_node_refused(self):
        # mws reached through a first node: the session carries this one tunnel, and the
        # refused stream is opened again on it (not on a pooled one)
        first = self.backend("relay")
        self.check_intact("relay", "relay", refuse=2, when="data", n=1,
                          before=("relay://127.0.0.1:%d" % first,))

    # ---- given up, not retried ----

    def test_every_stream_refused_gives_up(self):
        for connector, scheme in (("relay", "relay"), ("socks5", "socks5"), ("http", "http")):
            with self.subTest(connector=connector):
                fake = self.fake(self.backend(scheme), refuse=-1, when="data")
                front, metrics, proc = self.client(connector, fake)
                start = time.monotonic()
                self.assertEqual(until_end(front), b"")
                took = time.monotonic() - start
                self.assertLess(took, 5.0, "the tunnel took %.1fs to end" % took)
                self.assertEqual(fake.syns, MAX_RETRIES + 1)
                self.assertTrue(gostlib.wait_until(
                    lambda: "given up after %d attempts" % (MAX_RETRIES + 1) in proc.stderr_text(),
                    5), proc.stderr_text()[-3000:])
                self.assertEqual(self.refused_metric(metrics), MAX_RETRIES + 1)
                self.assertAlive(proc)

    def test_reply_then_close_not_retried(self):
        nobody = free_ports(1)[0]  # nothing listens there: the target is refused
        cases = (
            ("relay", "relay", nobody),        # 01 07 00 00 from the handler
            ("socks5", "socks5", nobody),      # a SOCKS5 failure reply
            ("http", "http", nobody),          # 503
            ("relay", "relay://u:p@", None),   # 01 02 00 00: auth failure
        )
        for connector, scheme, target_port in cases:
            with self.subTest(connector=connector, scheme=scheme):
                if scheme.endswith("@"):
                    backend = free_ports(1)[0]
                    self.start_gost("-L", "%s127.0.0.1:%d" % (scheme, backend), port=backend,
                                    name="backend")
                else:
                    backend = self.backend(scheme)
                fake = self.fake(backend)
                target = "127.0.0.1:%d" % target_port if target_port else None
                front, metrics, proc = self.client(connector, fake, target=target)
                self.assertEqual(until_end(front), b"")
                time.sleep(0.5)  # a retry would come after 50 ms
                self.assertEqual(fake.syns, 1, "a stream that carried a reply was opened again")
                self.assertEqual(self.refused_metric(metrics), 0)
                self.assertEqual(self.warnings(proc), [])

    def test_normal_end_not_retried(self):
        fake = self.fake(self.backend("relay"))
        front, _, proc = self.client("relay", fake)
        for i in range(3):
            data = os.urandom(1000 + i)
            self.assertEqual(exchange(front, data), data)
        time.sleep(0.3)
        self.assertEqual(fake.syns, 3)
        self.assertEqual(self.warnings(proc), [])

    def test_half_closed_tunnel_not_retried(self):
        # The client sent everything and shut down; the server then ends the stream without a
        # byte: maybe a target that read it all and closed (no refusal): not sent twice.
        fake = self.fake(self.backend("relay"), refuse=1, when="fin")
        front, metrics, proc = self.client("relay", fake)
        s = connect(front, 10)
        try:
            s.sendall(b"all of it")
            s.shutdown(socket.SHUT_WR)
            got, ended, _ = recv_until_close(s, 10)
        finally:
            s.close()
        self.assertEqual((got, ended), (b"", True))
        time.sleep(0.5)
        self.assertEqual(fake.syns, 1)
        self.assertEqual(self.refused_metric(metrics), 0)

    def test_late_end_not_retried(self):
        # a tunnel that never wrote, ended by the server long after its SYN (GOST's relay handler
        # does that after its 15 s readTimeout): no refusal, not opened again
        fake = self.fake(self.backend("relay"), refuse=1, when="late")
        front, metrics, proc = self.client("relay", fake)
        s = connect(front, 10)
        try:
            got, ended, took = recv_until_close(s, LATE + 5)
        finally:
            s.close()
        self.assertEqual((got, ended), (b"", True))
        self.assertLess(took, LATE + 2)
        time.sleep(0.5)
        self.assertEqual(fake.syns, 1)
        self.assertEqual(self.refused_metric(metrics), 0)
        self.assertEqual(self.warnings(proc), [])

    def test_past_replay_limit_not_retried(self):
        fake = self.fake(self.backend("relay"), refuse=1, when="limit")
        front, metrics, proc = self.client("relay", fake)
        self.assertEqual(until_end(front, os.urandom(4 * REPLAY_LIMIT)), b"")
        time.sleep(0.5)
        self.assertEqual(fake.syns, 1)
        self.assertTrue(gostlib.wait_until(
            lambda: "not retried: more than %d bytes written" % REPLAY_LIMIT in proc.stderr_text(),
            5), proc.stderr_text()[-3000:])
        self.assertEqual(self.refused_metric(metrics), 1)


if __name__ == "__main__":
    gostlib.main()
