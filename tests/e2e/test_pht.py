"""End-to-end tests of PHT (docs/PROTOCOLS.md "pht"): listeners/dialers pht and phts.

Our client against our server (the seed pair of the issue, phts, socks5 and auto over pht, 8 MiB
both ways, half-close, 100 concurrent tunnels, prompt EOF both ways); raw-socket clients that
behave like a GOST 3.2.6 client (authorize first, no close push) and a current GOST client
(tokenless, close push) against our server, with byte-level checks of the statuses; a raw
"old GOST server" (authorize required, pulls end after an idle heartbeat) against our client;
bad input.

Run: /usr/bin/python3 tests/e2e/test_pht.py <path-to-gost>
"""

import base64
import hashlib
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (RESP_200_CONNECT, connect, curl, free_port, free_ports,  # noqa: E402
                     recv_exact, recv_until_close)

SIZE = 8 * 1024 * 1024
HALF_SIZE = 1024 * 1024
TRANSFER_TIMEOUT = 90
PATHS = "authorizePath=/authorize&pushPath=/push&pullPath=/pull"

RE_DATE = rb"Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n"


def status_re(code, reason):
    return re.compile(rb"HTTP/1\.1 " + code + b" " + reason + b"\r\n" + RE_DATE +
                      rb"Content-Length: 0\r\n\r\n$")


OK_EMPTY = status_re(b"200", b"OK")
BAD_REQUEST = status_re(b"400", b"Bad Request")
FORBIDDEN = status_re(b"403", b"Forbidden")
TOO_LARGE = status_re(b"413", b"Request Entity Too Large")
PULL_HEAD = re.compile(rb"HTTP/1\.1 200 OK\r\nX-Accel-Buffering: no\r\n" + RE_DATE +
                       rb"Transfer-Encoding: chunked\r\n\r\n$")
NOT_FOUND = re.compile(rb"HTTP/1\.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       rb"X-Content-Type-Options: nosniff\r\n" + RE_DATE +
                       rb"Content-Length: 19\r\n\r\n404 page not found\n$")
AUTHORIZE = re.compile(rb"HTTP/1\.1 200 OK\r\n" + RE_DATE + rb"Content-Length: 26\r\n"
                       rb"Content-Type: text/plain; charset=utf-8\r\n\r\ntoken=([0-9a-v]{20})$")


def chunk_line(data):
    line = base64.b64encode(data) + b"\n"
    return b"%x\r\n%s\r\n" % (len(line), line)


# ---- a raw HTTP/1.1 client, as GOST's Go client behaves on the wire --------------------------

class RawHttp:
    """One keep-alive connection; request() returns (status, raw response bytes)."""

    def __init__(self, port, timeout=10.0):
        self.sock = connect(port, timeout)
        self.buf = b""
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timeout; buffered %r" % self.buf[:300])
        self.sock.settimeout(left)
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("EOF; buffered %r" % self.buf[:300])
        self.buf += d

    def head(self):
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        i = self.buf.index(b"\r\n\r\n") + 4
        h, self.buf = self.buf[:i], self.buf[i:]
        return h

    def request(self, method, target, body=None, host="127.0.0.1", extra=b""):
        req = b"%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\n" % (
            method.encode(), target.encode(), host.encode())
        if body is not None:
            req += b"Content-Length: %d\r\n" % len(body)
        req += extra + b"Accept-Encoding: gzip\r\n\r\n" + (body or b"")
        self.sock.sendall(req)
        h = self.head()
        m = re.search(rb"Content-Length: (\d+)\r\n", h)
        n = int(m.group(1)) if m else 0
        deadline = time.monotonic() + self.timeout
        while len(self.buf) < n:
            self._fill(deadline)
        resp, self.buf = h + self.buf[:n], self.buf[n:]
        return int(h.split(b" ")[1]), resp

    def read(self, n, timeout=10.0):
        """Exactly n bytes of the (chunked) stream as sent."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_some(self, timeout=10.0):
        if not self.buf:
            self._fill(time.monotonic() + timeout)
        out, self.buf = self.buf, b""
        return out


def push(port, token, data, conn=None):
    c = conn or RawHttp(port)
    try:
        body = base64.b64encode(data) + b"\n" if data else b""
        return c.request("POST", "/push?token=" + token, body)
    finally:
        if conn is None:
            c.close()


def push_until_forbidden(port, token, timeout=5.0):
    """Pushes (a new connection each time) until the token is refused; the last response."""
    deadline = time.monotonic() + timeout
    while True:
        status, resp = push(port, token, b"late")
        if status == 403 or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def start_pull(port, token):
    c = RawHttp(port)
    c.sock.sendall(b"GET /pull?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"User-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n"
                   % token.encode())
    return c


def pull_lines_until(c, want, timeout=10.0):
    """Reads chunks of a pull until the decoded data has `want` bytes; returns the data."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < want:
        while b"\r\n" not in c.buf:
            c._fill(deadline)
        size_line, rest = c.buf.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(rest) < size + 2:
            c._fill(deadline)
            size_line, rest = c.buf.split(b"\r\n", 1)
        line, c.buf = rest[:size], rest[size + 2:]
        if size == 0:
            raise EOFError("pull ended after %d bytes" % len(data))
        if line != b"\n":
            data += base64.b64decode(line[:-1])
    return data


# ---- an old (GOST 3.2.6) PHT server: authorize required, pulls end after an idle heartbeat ------

class OldGostServer:
    """Echoes every session's pushed bytes back through its pull. Pulls end after IDLE seconds
    without data with "\\n" (long-poll); close_sessions() makes them end with no line."""

    IDLE = 1.0

    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.sessions = {}     # token -> {"data": bytes, "closed": bool, "eof": bool}
        self.log = []          # (conn id, method, path, body length)
        self.hosts = set()     # Host headers seen
        self.conns = 0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stopped = True
        self.srv.close()
        with self.cond:
            for s in self.sessions.values():
                s["closed"] = True
            self.cond.notify_all()

    def close_sessions(self):
        with self.cond:
            for s in self.sessions.values():
                s["closed"] = True
            self.cond.notify_all()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                cid = self.conns
            threading.Thread(target=self._serve, args=(c, cid), daemon=True).start()

    def _serve(self, c, cid):
        c.settimeout(30)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                i = buf.index(b"\r\n\r\n") + 4
                head, buf = buf[:i], buf[i:]
                method, target = head.split(b" ")[:2]
                m = re.search(rb"(?i)content-length: (\d+)", head)
                n = int(m.group(1)) if m else 0
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:n], buf[n:]
                u = urllib.parse.urlsplit(target.decode())
                token = urllib.parse.parse_qs(u.query).get("token", [""])[0]
                host = re.search(rb"\r\nHost: ([^\r]*)\r\n", head)
                with self.lock:
                    self.log.append((cid, method.decode(), u.path, n))
                    self.hosts.add(host.group(1).decode() if host else None)
                if not self._handle(c, method, u.path, token, body):
                    return
        except OSError:
            return
        finally:
            c.close()

    def _reply(self, c, status, body=b"", ctype=False):
        reason = {200: b"OK", 400: b"Bad Request", 403: b"Forbidden"}[status]
        h = b"HTTP/1.1 %d %s\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: %d\r\n" % (
            status, reason, len(body))
        if ctype:
            h += b"Content-Type: text/plain; charset=utf-8\r\n"
        c.sendall(h + b"\r\n" + body)

    def _handle(self, c, method, path, token, body):
        if path == "/authorize":
            token = base64.b32hexencode(os.urandom(10)).decode().lower()
            with self.lock:
                self.sessions[token] = {"data": b"", "closed": False, "eof": False}
            self._reply(c, 200, b"token=" + token.encode(), ctype=True)
            return True
        with self.lock:
            s = self.sessions.get(token)
        if s is None:
            self._reply(c, 403)  # old servers: no lazy creation
            return True
        if path == "/push":
            line = body.split(b"\n", 1)[0] if b"\n" in body else None
            with self.cond:
                if line is None:
                    s["eof"] = True  # the close notification
                elif line:
                    s["data"] += base64.b64decode(line)
                self.cond.notify_all()
            self._reply(c, 200)
            return True
        if path == "/pull":
            c.sendall(b"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            while True:
                with self.cond:
                    end = time.monotonic() + self.IDLE
                    while not s["data"] and not s["closed"] and time.monotonic() < end:
                        self.cond.wait(max(0.0, end - time.monotonic()))
                    data, s["data"] = s["data"][:32768], s["data"][32768:]
                    closed = s["closed"]
                if data:
                    c.sendall(chunk_line(data))
                    continue
                if closed:
                    c.sendall(b"0\r\n\r\n")
                else:
                    c.sendall(b"1\r\n\n\r\n0\r\n\r\n")
                return True
        self._reply(c, 400)
        return True


class EofRecorder:
    """A TCP echo server that records when each connection sees EOF (eof_at[i] for the i-th
    accepted connection); `close_conn(i)` / `close_all` close them from this side."""

    def __init__(self):
        self.lock = threading.Lock()
        self.eofs = []
        self.eof_at = {}
        self.conns = []
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
                i = len(self.conns) - 1
            threading.Thread(target=self._serve, args=(c, i), daemon=True).start()

    def _serve(self, c, i):
        c.settimeout(60)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        with self.lock:
            now = time.monotonic()
            self.eofs.append(now)
            self.eof_at[i] = now

    def count(self):
        with self.lock:
            return len(self.conns)

    def close_conn(self, i):
        with self.lock:
            c = self.conns[i]
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.close()

    def close_all(self):
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()

    def close(self):
        self.srv.close()
        self.close_all()


EOF_BOUND = 1.0   # seconds from one side's close to the other side's EOF
EOF_TRIALS = 5


def check_eof_both_ways(testcase, open_tunnel, rec, trials=EOF_TRIALS, bound=EOF_BOUND):
    """A close is seen as EOF on the other side of the tunnel within `bound` seconds, both ways:
    the client closes → the target sees EOF; the target closes → the client sees EOF.

    Every one of `trials` tunnels must see its EOF (within a 5 s deadline), and the MEDIAN latency
    of each direction must be under `bound`: one scheduling stall of the loaded test machine
    cannot fail it, while an EOF that waits for a timer (a poll, a reaper, an idle timeout) misses
    the bound in most trials and fails it — more surely than a single trial would."""
    def roundtrip(s):
        s.sendall(b"ping")
        testcase.assertEqual(recv_exact(s, 4, timeout=15), b"ping")

    client_close, target_close = [], []
    for trial in range(trials):
        # the client closes → the target sees EOF
        s = open_tunnel(rec.addr)
        roundtrip(s)
        i = rec.count() - 1  # this tunnel's connection at the target (tunnels are sequential)
        t0 = time.monotonic()
        s.close()
        testcase.assertTrue(gostlib.wait_until(lambda: i in rec.eof_at, timeout=5),
                            "trial %d: the target never saw EOF after the client closed" % trial)
        client_close.append(rec.eof_at[i] - t0)
        # the target closes → the client sees EOF
        s = open_tunnel(rec.addr)
        try:
            roundtrip(s)
            i = rec.count() - 1
            t0 = time.monotonic()
            rec.close_conn(i)
            data, closed, elapsed = recv_until_close(s, timeout=5)
        finally:
            s.close()
        testcase.assertTrue(closed, "trial %d: the client never saw EOF after the target closed"
                            % trial)
        testcase.assertEqual(data, b"", "trial %d" % trial)
        target_close.append(elapsed)
    sys.stderr.write("EOF latency, client closes: %s; target closes: %s\n"
                     % (["%.3f" % x for x in client_close], ["%.3f" % x for x in target_close]))
    for label, xs in (("client closes → target EOF", client_close),
                      ("target closes → client EOF", target_close)):
        median = sorted(xs)[len(xs) // 2]
        testcase.assertLess(median, bound, "%s: median %.2fs over %d trials (%s)"
                            % (label, median, len(xs), ", ".join("%.2f" % x for x in xs)))


class PhtTest(gostlib.GostTestCase):

    # -- helpers --------------------------------------------------------------------------------

    def pair(self, scheme="relay+pht", server_scheme=None, front="http", extra=""):
        """Server `server_scheme` (default: scheme) and a front proxy chaining to it."""
        s, c = free_ports(2)
        q = PATHS + extra
        self.start_gost("-L", "%s://127.0.0.1:%d?%s" % (server_scheme or scheme, s, q), port=s,
                        name="pht-server")
        self.start_gost("-L", "%s://127.0.0.1:%d" % (front, c),
                        "-F", "%s://127.0.0.1:%d?%s" % (scheme, s, q), port=c, name="pht-client")
        return s, c

    def tunnel(self, proxy_port, target):
        s = connect(proxy_port, timeout=15)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        self.assertEqual(recv_exact(s, len(RESP_200_CONNECT), timeout=15), RESP_200_CONNECT)
        return s

    def forward_server(self, target, query=""):
        """Our pht server with the forward handler to `target` (raw tunnel bytes)."""
        p = free_port()
        self.start_gost("-L", "pht://127.0.0.1:%d/%s?%s" % (p, target, query), port=p,
                        name="pht-forward")
        return p

    # -- our client against our server ------------------------------------------------------------

    def test_seed_pair_with_curl(self):
        origin = self.start_server(gostlib.OriginServer())
        _, c = self.pair()
        r = curl(origin.url, proxy="http://127.0.0.1:%d" % c)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", origin.body), r)
        r = curl(origin.url + "big", proxy="http://127.0.0.1:%d" % c, tunnel=True)
        self.assertEqual((r.rc, r.http_code), (0, "200"), r)
        self.assertEqual(r.body, origin.big)

    def test_phts_pair(self):
        origin = self.start_server(gostlib.OriginServer())
        _, c = self.pair("relay+phts")
        for tunnel in (False, True):
            r = curl(origin.url + "big", proxy="http://127.0.0.1:%d" % c, tunnel=tunnel)
            self.assertEqual((r.rc, r.http_code), (0, "200"), r)
            self.assertEqual(r.body, origin.big)

    def test_socks5_over_pht(self):
        origin = self.start_server(gostlib.OriginServer())
        s, c = free_ports(2)
        self.start_gost("-L", "socks5+pht://127.0.0.1:%d" % s, port=s, name="server")
        self.start_gost("-L", "socks5://127.0.0.1:%d" % c, "-F", "socks5+pht://127.0.0.1:%d" % s,
                        port=c, name="client")
        r = curl(origin.url, proxy="socks5h://127.0.0.1:%d" % c)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", origin.body), r)

    def test_pht_alone_is_auto_handler_and_http_connector(self):
        # docs/PROTOCOLS.md "cli: schemes": -L pht:// = auto handler, -F pht:// = http connector.
        origin = self.start_server(gostlib.OriginServer())
        s, c = free_ports(2)
        self.start_gost("-L", "phts://127.0.0.1:%d" % s, port=s, name="server")
        self.start_gost("-L", "127.0.0.1:%d" % c, "-F", "phts://127.0.0.1:%d" % s, port=c,
                        name="client")
        r = curl(origin.url, proxy="http://127.0.0.1:%d" % c)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", origin.body), r)
        r = curl(origin.url, proxy="socks5h://127.0.0.1:%d" % c)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", origin.body), r)

    def test_8MiB_both_directions(self):
        duplex = self.start_server(gostlib.DuplexServer(SIZE))
        _, c = self.pair()
        sock = self.tunnel(c, duplex.addr)
        payload = os.urandom(SIZE)
        errors = []

        def sender():
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        data, closed, _ = recv_until_close(sock, timeout=TRANSFER_TIMEOUT)
        t.join(TRANSFER_TIMEOUT)
        sock.close()
        self.assertFalse(t.is_alive(), "the sender did not finish within %ds" % TRANSFER_TIMEOUT)
        self.assertEqual(errors, [])
        self.assertTrue(closed, "no EOF after %d bytes" % len(data))
        rec = duplex.wait_record(lambda r: r["recv_len"] > 0, timeout=30)
        self.assertIsNotNone(rec)
        self.assertEqual(rec["recv_len"], SIZE)
        self.assertEqual(rec["recv_sha"], hashlib.sha256(payload).hexdigest())
        self.assertEqual(len(data), SIZE)
        self.assertEqual(hashlib.sha256(data).hexdigest(), rec["sent_sha"])

    def test_half_close(self):
        reply = os.urandom(HALF_SIZE)
        halfsrv = self.start_server(gostlib.ReplyAfterEOFServer(reply))
        _, c = self.pair()
        sock = self.tunnel(c, halfsrv.addr)
        payload = os.urandom(HALF_SIZE)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # → the close notification; the pull goes on
        data, closed, _ = recv_until_close(sock, timeout=TRANSFER_TIMEOUT)
        sock.close()
        self.assertTrue(closed)
        self.assertEqual(len(data), 32 + HALF_SIZE)
        self.assertEqual(data[:32], hashlib.sha256(payload).digest())
        self.assertEqual(data[32:], reply)

    def test_100_concurrent_tunnels(self):
        echo = self.start_server(gostlib.EchoServer())
        _, c = self.pair()
        errors = []

        def one(i):
            try:
                s = self.tunnel(c, echo.addr)
                msg = os.urandom(20000 + i)
                s.sendall(msg)
                got = recv_exact(s, len(msg), timeout=60)
                if got != msg:
                    errors.append("tunnel %d: got %d bytes" % (i, len(got)))
                s.close()
            except Exception as e:  # noqa: BLE001
                errors.append("tunnel %d: %r" % (i, e))

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(100)]
        for t in threads:
            t.start()
        hung = gostlib.join_all(threads, 90)
        self.assertEqual(len(hung), 0, "%d of 100 tunnels still running after 90 s" % len(hung))
        self.assertEqual(errors, [])

    def test_many_short_tunnels_in_a_row_never_fail(self):
        """New tunnels at a high rate, each ended by the target (as wrk with Connection: close
        through nginx): the pull then ends cleanly on the server, which closes that connection —
        our client must not pool it. Before the fix about one tunnel in six failed at its
        authorize or pull on such a connection."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(128)
        self.addCleanup(srv.close)

        def serve():  # answers one message, then closes: the target ends every tunnel
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                try:
                    c.settimeout(10)
                    c.sendall(c.recv(64))
                except OSError:
                    pass
                c.close()
        threading.Thread(target=serve, daemon=True).start()
        target = "127.0.0.1:%d" % srv.getsockname()[1]
        _, c = self.pair()
        errors = []
        lock = threading.Lock()

        def worker(w):
            for i in range(40):
                try:
                    s = self.tunnel(c, target)
                    msg = b"ping %d %d" % (w, i)
                    s.sendall(msg)
                    data, closed, _ = gostlib.recv_until_close(s, timeout=15)
                    s.close()
                    if data != msg or not closed:
                        raise AssertionError("got %r closed=%r" % (data, closed))
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append("worker %d tunnel %d: %r" % (w, i, e))

        threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(10)]
        for t in threads:
            t.start()
        hung = gostlib.join_all(threads, 120)
        self.assertEqual(len(hung), 0, "%d of 10 workers still running after 120 s" % len(hung))
        self.assertEqual(errors[:5], [], "%d of 400 tunnels failed" % len(errors))

    def test_close_is_seen_as_eof_within_a_second_both_ways(self):
        rec = self.start_server(EofRecorder())
        _, c = self.pair()
        check_eof_both_ways(self, lambda target: self.tunnel(c, target), rec)

    def test_later_chain_node_is_refused_with_a_clear_error(self):
        origin = self.start_server(gostlib.OriginServer())
        a, b, c = free_ports(3)
        self.start_gost("-L", "http://127.0.0.1:%d" % a, port=a, name="hop1")
        self.start_gost("-L", "relay+pht://127.0.0.1:%d" % b, port=b, name="hop2")
        front = self.start_gost("-L", "http://127.0.0.1:%d" % c, "-F", "http://127.0.0.1:%d" % a,
                                "-F", "relay+pht://127.0.0.1:%d" % b, port=c, name="front")
        r = curl(origin.url, proxy="http://127.0.0.1:%d" % c)
        self.assertNotEqual(r.http_code, "200")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "only the first node" not in front.stderr_text():
            time.sleep(0.05)
        self.assertIn("only the first node of a chain", front.stderr_text())

    # -- raw clients against our server -----------------------------------------------------------

    def test_gost_326_client_authorize_first(self):
        echo = self.start_server(gostlib.EchoServer())
        p = self.forward_server(echo.addr)
        c = RawHttp(p)
        status, resp = c.request("GET", "/authorize")
        m = AUTHORIZE.match(resp)
        self.assertIsNotNone(m, resp)
        token = m.group(1).decode()
        # the first push on the authorize connection (keep-alive), the pull on another
        status, resp = push(p, token, b"hello", conn=c)
        self.assertRegex(resp, OK_EMPTY)
        pull = start_pull(p, token)
        self.assertRegex(pull.head(), PULL_HEAD)
        self.assertEqual(pull.read(len(chunk_line(b"hello"))), b"9\r\naGVsbG8=\n\r\n")
        status, resp = push(p, token, b"world", conn=c)
        self.assertEqual(status, 200)
        self.assertEqual(pull.read(len(chunk_line(b"world"))), b"9\r\nd29ybGQ=\n\r\n")
        # a 3.2.6 client sends no close push: it just goes away; the server notices the
        # pull's connection and ends the session
        pull.close()
        c.close()
        self.assertRegex(push_until_forbidden(p, token), FORBIDDEN)

    def test_current_gost_client_tokenless_and_close_push(self):
        echo = self.start_server(gostlib.EchoServer())
        p = self.forward_server(echo.addr)
        token = "cgd7q3k2lhb6d0j5ffag"
        # the push may come first: it opens the session
        status, resp = push(p, token, b"hello")
        self.assertRegex(resp, OK_EMPTY)
        pull = start_pull(p, token)
        self.assertRegex(pull.head(), PULL_HEAD)
        self.assertEqual(pull.read(len(chunk_line(b"hello"))), b"9\r\naGVsbG8=\n\r\n")
        # the close notification: the echo server sees EOF and closes; the pull ends
        status, resp = push(p, token, b"")
        self.assertRegex(resp, OK_EMPTY)
        self.assertEqual(pull.read(5, timeout=5), b"0\r\n\r\n")
        # the pull's connection stays open for the next request, as Go's server keeps it (GOST
        # clients pool it): here the re-pull of a current client, answered 403 (stale token)
        status, resp = pull.request("GET", "/pull?token=" + token)
        self.assertRegex(resp, FORBIDDEN)
        pull.close()
        # stale token: 403 for a push and a pull (no new session)
        self.assertRegex(push_until_forbidden(p, token), FORBIDDEN)
        c = RawHttp(p)
        status, resp = c.request("GET", "/pull?token=" + token)
        self.assertRegex(resp, FORBIDDEN)
        c.close()

    def test_request_statuses(self):
        echo = self.start_server(gostlib.EchoServer())
        p = self.forward_server(echo.addr)
        c = RawHttp(p)
        self.assertRegex(c.request("GET", "/push?token=a")[1], BAD_REQUEST)
        self.assertRegex(c.request("POST", "/pull?token=a", b"")[1], BAD_REQUEST)
        self.assertRegex(c.request("POST", "/push?token=a;x", b"aGk=\n")[1], BAD_REQUEST)
        self.assertRegex(c.request("POST", "/push?token=%zz", b"aGk=\n")[1], BAD_REQUEST)
        self.assertRegex(c.request("GET", "/push/x")[1], NOT_FOUND)
        self.assertRegex(c.request("GET", "/")[1], NOT_FOUND)
        # any method gets a token
        self.assertRegex(c.request("POST", "/authorize", b"")[1], AUTHORIZE)
        # bad base64 → 400, the session is closed → 403
        token = "badb64token"
        self.assertEqual(push(p, token, b"x", conn=c)[0], 200)
        self.assertRegex(c.request("POST", "/push?token=" + token, b"!!!!\n")[1], BAD_REQUEST)
        self.assertRegex(c.request("POST", "/push?token=" + token, b"aGk=\n")[1], FORBIDDEN)
        c.close()

    def test_heartbeat_after_10s_idle(self):
        echo = self.start_server(gostlib.EchoServer())
        p = self.forward_server(echo.addr)
        token = "heartbeattoken"
        pull = start_pull(p, token)
        self.assertRegex(pull.head(), PULL_HEAD)
        t0 = time.monotonic()
        self.assertEqual(pull.read(6, timeout=15), b"1\r\n\n\r\n")
        self.assertGreater(time.monotonic() - t0, 9.0)
        # the session still works after the heartbeat
        self.assertEqual(push(p, token, b"hi")[0], 200)
        self.assertEqual(pull.read(len(chunk_line(b"hi"))), chunk_line(b"hi"))
        pull.close()

    def test_http10_pull_is_close_delimited(self):
        echo = self.start_server(gostlib.EchoServer())
        p = self.forward_server(echo.addr)
        token = "http10token"
        c = connect(p)
        c.sendall(b"GET /pull?token=%s HTTP/1.0\r\n\r\n" % token.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(1)
        self.assertRegex(head, re.compile(rb"HTTP/1\.0 200 OK\r\nX-Accel-Buffering: no\r\n" +
                                          RE_DATE + rb"\r\n$"))
        self.assertEqual(push(p, token, b"hello")[0], 200)
        self.assertEqual(recv_exact(c, 9), b"aGVsbG8=\n")
        self.assertEqual(push(p, token, b"")[0], 200)  # echo closes → the response ends
        data, closed, _ = recv_until_close(c, timeout=5)
        c.close()
        self.assertEqual((data, closed), (b"", True))

    def test_bad_input_then_server_keeps_serving(self):
        echo = self.start_server(gostlib.EchoServer())
        p = self.forward_server(echo.addr)
        # garbage → 400 and the connection closes
        data, closed = gostlib.request_until_close(p, b"\x16\x03\x01garbage\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)
        self.assertTrue(closed)
        # a huge head → 431
        data, closed = gostlib.request_until_close(
            p, b"GET /pull HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 431 "), data[:100])
        # a push line over 64 KiB → 413, and the session is over
        token = "oversized"
        self.assertEqual(push(p, token, b"x")[0], 200)
        c = RawHttp(p)
        status, resp = c.request("POST", "/push?token=" + token, b"A" * 70000 + b"\n")
        self.assertRegex(resp, TOO_LARGE)
        c.close()
        self.assertEqual(push(p, token, b"x")[0], 403)
        # a body shorter than its Content-Length, then the client goes away
        s = connect(p)
        s.sendall(b"POST /push?token=short HTTP/1.1\r\nContent-Length: 100\r\n\r\naGk=")
        s.close()
        # still serving
        pull = start_pull(p, "after")
        self.assertRegex(pull.head(), PULL_HEAD)
        self.assertEqual(push(p, "after", b"ok")[0], 200)
        self.assertEqual(pull_lines_until(pull, 2), b"ok")
        pull.close()

    # -- our client against an old GOST server ----------------------------------------------------

    def test_client_against_old_gost_server(self):
        old = OldGostServer()
        self.addCleanup(old.close)
        p = free_port()
        self.start_gost("-L", "tcp://127.0.0.1:%d/127.0.0.1:1" % p,
                        "-F", "forward+pht://127.0.0.1:%d?host=tunnel.example" % old.port, port=p,
                        name="client")
        s = connect(p, timeout=15)
        msg = os.urandom(100000)
        s.sendall(msg)
        self.assertEqual(recv_exact(s, len(msg), timeout=15), msg)
        # idle past the old server's pull end: our client re-pulls
        time.sleep(2.5)
        for i in range(30):
            s.sendall(b"x%d" % i)
            self.assertEqual(recv_exact(s, len(b"x%d" % i)), b"x%d" % i)
        with old.lock:
            log = list(old.log)
        self.assertEqual(log[0][1:3], ("GET", "/authorize"))
        self.assertEqual(old.hosts, {"tunnel.example:%d" % old.port})
        pulls = [x for x in log if x[2] == "/pull"]
        self.assertGreaterEqual(len(pulls), 2, log)
        push_conns = {x[0] for x in log if x[2] == "/push"}
        self.assertLessEqual(len(push_conns), 3, "pushes should reuse connections: %r" % log)
        # pushes carry ≤ 32 KiB raw: 43693-byte bodies for the 100000-byte burst at most
        self.assertLessEqual(max(x[3] for x in log if x[2] == "/push"), 43693)
        # the server application closes: its pull ends without a line → EOF for our client
        old.close_sessions()
        data, closed, elapsed = recv_until_close(s, timeout=5)
        self.assertTrue(closed)
        self.assertLess(elapsed, 2.0)
        s.close()
        # our client's close sent the close notification (empty push)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with old.lock:
                if any(x[2] == "/push" and x[3] == 0 for x in old.log):
                    break
            time.sleep(0.05)
        with old.lock:
            self.assertTrue(any(x[2] == "/push" and x[3] == 0 for x in old.log), old.log[-5:])

    def test_client_falls_back_to_a_local_token(self):
        # a server without authorize (404) and lazy sessions: our own server's forward service
        # with another authorize path plays it
        echo = self.start_server(gostlib.EchoServer())
        s, c = free_ports(2)
        self.start_gost("-L", "pht://127.0.0.1:%d/%s?authorizePath=/elsewhere" % (s, echo.addr),
                        port=s, name="server")
        self.start_gost("-L", "tcp://127.0.0.1:%d/127.0.0.1:1" % c,
                        "-F", "forward+pht://127.0.0.1:%d" % s, port=c, name="client")
        sock = connect(c, timeout=15)
        sock.sendall(b"local token")
        self.assertEqual(recv_exact(sock, 11), b"local token")
        sock.close()


if __name__ == "__main__":
    gostlib.main()
